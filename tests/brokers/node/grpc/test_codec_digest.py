"""The body digest is computed once at write time (``__BODY_MD5``) and delivered from there;
records without it (written before) get it computed per delivery. Same delivered form either way."""

from __future__ import annotations

import hashlib

from rocketmq.grpc_protocol import definition_pb2 as pb

from brokers.node.grpc.codec import PROP_BODY_MD5, to_delivered_message, to_new_message
from brokers.node.store.model import MessageFlag, StoredMessage


def _stored(props: dict[str, str], body: bytes, flags: int = 0) -> StoredMessage:
    return StoredMessage("0A00000100000000000004D2", "ns1%orders", 1, 7, 1234, 200,
                         memoryview(body), "t", ("k1",), props, 1_700_000_000_123,
                         1_700_000_000_456, "10.0.0.1:1", flags, 0)


def test_send_stores_md5_once_and_delivery_reports_it() -> None:
    body = b"hello \x00 world" * 50
    sent = pb.Message(topic=pb.Resource(resource_namespace="ns1", name="orders"), body=body,
                      user_properties={"__BODY_MD5": "spoofed", "a": "b"},
                      system_properties=pb.SystemProperties(message_id="01AB", tag="t"))
    new = to_new_message(sent, stored_topic_name="ns1%orders", queue_id=1,
                         message_type=pb.NORMAL, born_host_fallback="10.0.0.1")
    expected = hashlib.md5(body).hexdigest().upper()
    assert new.properties[PROP_BODY_MD5] == expected  # a client cannot choose it
    with_prop = to_delivered_message(_stored(dict(new.properties), body), receipt_handle="h",
                                     delivery_attempt=1, invisible_duration_s=2.5)
    without = {k: v for k, v in new.properties.items() if k != PROP_BODY_MD5}
    legacy = to_delivered_message(_stored(without, body), receipt_handle="h",
                                  delivery_attempt=1, invisible_duration_s=2.5)
    assert with_prop == legacy
    d = with_prop.system_properties.body_digest
    assert d.type == pb.MD5 and d.checksum == expected
    assert PROP_BODY_MD5 not in with_prop.user_properties
    sp = with_prop.system_properties
    assert (sp.born_timestamp.seconds, sp.born_timestamp.nanos) == (1_700_000_000, 123_000_000)
    assert (sp.store_timestamp.seconds, sp.store_timestamp.nanos) == (1_700_000_000, 456_000_000)
    assert (sp.invisible_duration.seconds, sp.invisible_duration.nanos) == (2, 500_000_000)
    assert sp.HasField("invisible_duration")


def test_message_type_and_zero_durations_are_reported() -> None:
    for flags, want in [(0, pb.NORMAL), (MessageFlag.FIFO, pb.FIFO), (MessageFlag.DELAY, pb.DELAY),
                        (MessageFlag.TRANSACTION_COMMIT, pb.TRANSACTION),
                        (int(MessageFlag.TRANSACTION_HALF), pb.TRANSACTION)]:
        m = to_delivered_message(_stored({"__DELIVERY_TIME_MS": "0"}, b"x", flags),
                                 receipt_handle="h", delivery_attempt=1,
                                 invisible_duration_s=0)
        assert m.system_properties.message_type == want
        assert m.system_properties.HasField("invisible_duration")
        assert m.system_properties.HasField("delivery_timestamp")


def test_to_new_message_maps_every_field() -> None:
    """to_new_message builds NewMessage positionally (cheaper per message): each field must land
    where its name says, also if the store's NewMessage changes its field order."""
    sent = pb.Message(topic=pb.Resource(resource_namespace="ns1", name="orders"), body=b"b",
                      user_properties={"a": "b"},
                      system_properties=pb.SystemProperties(
                          message_id="01AB", tag="t", keys=["k1", "k2"], born_host="1.2.3.4",
                          born_timestamp={"seconds": 1_700_000_000, "nanos": 5_000_000},
                          message_group="g"))
    new = to_new_message(sent, stored_topic_name="ns1%orders", queue_id=3,
                         message_type=pb.FIFO, born_host_fallback="peer")
    assert (new.topic, new.queue_id, new.body, new.tag, new.keys) == (
        "ns1%orders", 3, b"b", "t", ("k1", "k2"))
    assert (new.born_timestamp_ms, new.born_host, new.flags, new.reconsume_times) == (
        1_700_000_000_005, "1.2.3.4", int(MessageFlag.FIFO), 0)
    assert new.properties["a"] == "b" and new.properties["__MESSAGE_GROUP"] == "g"
    bare = to_new_message(pb.Message(body=b"x"), stored_topic_name="ns%t", queue_id=0,
                          message_type=pb.NORMAL, born_host_fallback="peer")
    assert (bare.tag, bare.keys, bare.born_timestamp_ms, bare.born_host) == ("", (), 0, "peer")
