"""Copy-paste quick starts for the official RocketMQ 5.x SDKs, filled in with an instance's
endpoint and namespace. The SecretKey is always a placeholder: the console never shows it again."""
from __future__ import annotations

from dataclasses import dataclass

ACCESS_KEY_PLACEHOLDER = "YOUR_ACCESS_KEY"
SECRET_KEY_PLACEHOLDER = "YOUR_SECRET_KEY"


@dataclass(frozen=True)
class Sample:
    key: str
    label: str
    install: str
    code: str


def samples(*, endpoint: str, namespace: str, topic: str = "YOUR_TOPIC", access_key: str = ACCESS_KEY_PLACEHOLDER) -> list[Sample]:
    endpoint = endpoint or "ENDPOINT_PENDING"
    sk = SECRET_KEY_PLACEHOLDER
    return [
        Sample("python", "Python", "pip install rocketmq-python-client", f'''from rocketmq import ClientConfiguration, Credentials, Message, Producer

config = ClientConfiguration("{endpoint}", Credentials("{access_key}", "{sk}"), namespace="{namespace}")
producer = Producer(config, ("{topic}",))
producer.startup()
try:
    message = Message()
    message.topic = "{topic}"
    message.body = b"hello"
    print(producer.send(message))
finally:
    producer.shutdown()
'''),
        Sample("java", "Java", "org.apache.rocketmq:rocketmq-client-java:5.0.7", f'''import org.apache.rocketmq.client.apis.*;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.producer.Producer;
import java.nio.charset.StandardCharsets;

ClientServiceProvider provider = ClientServiceProvider.loadService();
ClientConfiguration config = ClientConfiguration.newBuilder()
    .setEndpoints("{endpoint}")
    .setNamespace("{namespace}")
    .setCredentialProvider(new StaticSessionCredentialsProvider("{access_key}", "{sk}"))
    .build();
try (Producer producer = provider.newProducerBuilder()
        .setClientConfiguration(config).setTopics("{topic}").build()) {{
    Message message = provider.newMessageBuilder().setTopic("{topic}")
        .setBody("hello".getBytes(StandardCharsets.UTF_8)).build();
    System.out.println(producer.send(message).getMessageId());
}}
'''),
        Sample("go", "Go", "go get github.com/apache/rocketmq-clients/golang/v5", f'''package main

import (
	"context"
	"fmt"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
)

func main() {{
	producer, err := rmq.NewProducer(&rmq.Config{{
		Endpoint:    "{endpoint}",
		NameSpace:   "{namespace}",
		Credentials: &credentials.SessionCredentials{{AccessKey: "{access_key}", AccessSecret: "{sk}"}},
	}}, rmq.WithTopics("{topic}"))
	if err != nil {{
		panic(err)
	}}
	if err := producer.Start(); err != nil {{
		panic(err)
	}}
	defer producer.GracefulStop()
	receipts, err := producer.Send(context.TODO(), &rmq.Message{{Topic: "{topic}", Body: []byte("hello")}})
	fmt.Println(receipts, err)
}}
'''),
        Sample("nodejs", "Node.js", "npm install rocketmq-client-nodejs", f'''const {{ Producer }} = require('rocketmq-client-nodejs');

const producer = new Producer({{
  endpoints: '{endpoint}',
  namespace: '{namespace}',
  sessionCredentials: {{ accessKey: '{access_key}', accessSecret: '{sk}' }},
}});
await producer.startup();
const receipt = await producer.send({{ topic: '{topic}', body: Buffer.from('hello') }});
console.log(receipt.messageId);
await producer.shutdown();
'''),
    ]
