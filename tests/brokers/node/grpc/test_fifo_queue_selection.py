"""ReceiveMessage ignores message_queue.id for FIFO groups too (proxy semantics).

The official Node.js SimpleConsumer (rocketmq-client-nodejs 1.0.8) always sends queue id 0: its
load balancer keeps only queues whose *queue id* equals the master broker id. A server that only
popped the requested queue for FIFO groups never delivered FIFO messages stored in queues 1..n-1.
"""

from __future__ import annotations

from rocketmq import Message, Producer
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from ..conftest import ALL_ACCESS, NodeHandle, RawClient, sign_headers

AK, SK, NS = ALL_ACCESS


def test_fifo_receive_asking_for_queue_0_gets_messages_of_every_queue(
        node: NodeHandle, raw_client: RawClient) -> None:
    producer = Producer(node.client_config(*ALL_ACCESS), ("fifo-orders",))
    producer.startup()
    sent: dict[str, int] = {}
    try:
        for i in range(12):  # enough message groups to land in several of the 4 queues
            m = Message()
            m.topic, m.body, m.message_group = "fifo-orders", f"g{i}".encode(), f"g{i}"
            receipt = producer.send(m)
            sent[receipt.message_id] = int(str(receipt.message_queue).rsplit(".", 1)[1])
    finally:
        producer.shutdown()
    assert len(set(sent.values())) > 1 and set(sent.values()) != {0}

    req = spb.ReceiveMessageRequest(
        group=pb.Resource(name="g-fifo"),  # namespace only in the header, like Node.js
        message_queue=pb.MessageQueue(topic=pb.Resource(name="fifo-orders"), id=0),
        filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
        batch_size=32, invisible_duration={"seconds": 30}, long_polling_timeout={"seconds": 1},
    )
    frames = list(raw_client.stub.ReceiveMessage(req, metadata=sign_headers(*ALL_ACCESS),
                                                 timeout=10))
    assert frames[0].status.code == pb.Code.OK
    got = {f.message.system_properties.message_id for f in frames if f.HasField("message")}
    # Twelve groups, one message each: all twelve arrive in one receive,
    # including those stored in queues other than the requested queue 0.
    assert got == set(sent)
