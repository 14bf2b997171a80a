#!/usr/bin/env node
// Drives the official RocketMQ Node.js client (rocketmq-client-nodejs) against a broker node.
//
//   node client.js produce '<json spec>'   -> {"sent": [{"messageId": ..., "offset": ...}, ...]}
//   node client.js consume '<json spec>'   -> {"received": [{messageId, topic, body, tag, keys,
//                                               properties, messageGroup, ...}, ...]}
//
// Common spec fields: endpoint, namespace, accessKey, accessSecret (env RMQ_ENDPOINT, RMQ_NAMESPACE,
// RMQ_ACCESS_KEY, RMQ_ACCESS_SECRET fill in missing ones).
// produce: topic, messages: [{body, tag, keys, properties, messageGroup, delayMs, recall}]
//   (recall: recall the delay message right after sending it; adds "recalledId")
// transact: topic, messages: [{body, end: "commit" | "rollback" | "open"}], checker ("commit" or
//   "rollback": what the transaction checker answers), waitChecks (keep running until this many
//   checks were answered), timeoutMs -> {"sent": [{messageId, transactionId}], "checked": [bodies]}
// consume: topic, group, expected (stop once this many arrived), tag ("*"), timeoutMs, ack (true)
// On failure prints {"error": {"name", "code", "message"}} and exits with 2.
'use strict';

const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');
const { TransactionResolution } = require(
  'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb');

// The client's default logger writes to ~/logs; keep everything on stderr instead.
const logger = {
  info: (...a) => process.env.RMQ_DEBUG && console.error('[info]', ...a),
  warn: (...a) => console.error('[warn]', ...a),
  error: (...a) => console.error('[error]', ...a),
  debug: () => {},
  close: () => {},
};

function baseOptions(spec) {
  const options = {
    endpoints: spec.endpoint || process.env.RMQ_ENDPOINT,
    namespace: spec.namespace ?? process.env.RMQ_NAMESPACE ?? '',
    requestTimeout: spec.requestTimeoutMs || 5000,
    logger,
  };
  const accessKey = spec.accessKey || process.env.RMQ_ACCESS_KEY;
  const accessSecret = spec.accessSecret || process.env.RMQ_ACCESS_SECRET;
  if (accessKey) options.sessionCredentials = { accessKey, accessSecret };
  return options;
}

async function produce(spec) {
  // No `topic` option: startup would then fetch routes and wrap a refusal in a generic error;
  // the first send fetches them and surfaces the server's code (e.g. UnauthorizedException).
  const producer = new Producer({ ...baseOptions(spec), maxAttempts: 1 });
  await producer.startup();
  const sent = [];
  try {
    for (const m of spec.messages) {
      const receipt = await producer.send({
        topic: spec.topic,
        body: Buffer.from(m.body, 'utf8'),
        tag: m.tag,
        keys: m.keys,
        properties: m.properties ? new Map(Object.entries(m.properties)) : undefined,
        messageGroup: m.messageGroup,
        delay: m.delayMs,
      });
      const entry = { messageId: receipt.messageId, offset: receipt.offset };
      if (m.recall) {
        entry.recalledId = (await producer.recallMessage(spec.topic, receipt.recallHandle)).messageId;
      }
      sent.push(entry);
    }
  } finally {
    await producer.shutdown();
  }
  return { sent };
}

async function transact(spec) {
  const checked = [];
  const answer = spec.checker === 'rollback'
    ? TransactionResolution.ROLLBACK : TransactionResolution.COMMIT;
  const producer = new Producer({
    ...baseOptions(spec),
    topic: spec.topic,
    maxAttempts: 1,
    checker: {
      async check(view) {
        checked.push(view.body.toString('utf8'));
        return answer;
      },
    },
  });
  await producer.startup();
  const sent = [];
  try {
    for (const m of spec.messages) {
      const transaction = producer.beginTransaction();
      const receipt = await producer.send(
        { topic: spec.topic, body: Buffer.from(m.body, 'utf8') }, transaction);
      sent.push({ messageId: receipt.messageId, transactionId: receipt.transactionId });
      if (m.end === 'commit') await transaction.commit();
      else if (m.end === 'rollback') await transaction.rollback();
    }
    const deadline = Date.now() + (spec.timeoutMs || 15000);
    while (checked.length < (spec.waitChecks || 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the last EndTransaction go out
  } finally {
    await producer.shutdown();
  }
  return { sent, checked };
}

async function consume(spec) {
  const consumer = new SimpleConsumer({
    ...baseOptions(spec),
    consumerGroup: spec.group,
    subscriptions: new Map().set(spec.topic, spec.tag || '*'),
    awaitDuration: spec.awaitMs || 2000,
  });
  await consumer.startup();
  const received = [];
  const deadline = Date.now() + (spec.timeoutMs || 15000);
  try {
    while (received.length < (spec.expected || 1) && Date.now() < deadline) {
      const messages = await consumer.receive(16, 20000);
      for (const m of messages) {
        received.push({
          messageId: m.messageId,
          topic: m.topic,
          body: m.body.toString('utf8'),
          tag: m.tag ?? null,
          keys: m.keys,
          properties: Object.fromEntries(m.properties),
          messageGroup: m.messageGroup ?? null,
          deliveryTimestamp: m.deliveryTimestamp ? m.deliveryTimestamp.getTime() : null,
          bornTimestamp: m.bornTimestamp ? m.bornTimestamp.getTime() : null,
          deliveryAttempt: m.deliveryAttempt ?? null,
          corrupted: Boolean(m.corrupted),
          receivedAt: Date.now(),
        });
        if (spec.ack !== false) await consumer.ack(m);
      }
    }
  } finally {
    await consumer.shutdown();
  }
  return { received };
}

async function main() {
  const [command, raw] = process.argv.slice(2);
  const spec = JSON.parse(raw || '{}');
  const handlers = { produce, transact, consume };
  if (!handlers[command]) {
    throw new Error(`unknown command ${command}; use produce, transact or consume`);
  }
  return handlers[command](spec);
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
  },
  (err) => {
    process.stdout.write(JSON.stringify({
      error: { name: err.name, code: err.code ?? null, message: String(err.message) },
    }) + '\n');
    process.exit(2);
  },
);
