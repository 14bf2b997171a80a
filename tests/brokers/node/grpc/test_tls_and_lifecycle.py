"""TLS with the SDK, a client in another time zone, state reloads, graceful SIGTERM."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from ..conftest import ALL_ACCESS, REPO, NodeHandle, RawClient, default_state, sign_headers


def _make_ca_and_server_cert(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


_CLIENT = textwrap.dedent("""
    import sys
    from rocketmq import ClientConfiguration, Credentials, Message, Producer
    endpoint, ak, sk, ns = sys.argv[1:5]
    p = Producer(ClientConfiguration(endpoint, Credentials(ak, sk), namespace=ns),
                 ("orders",), tls_enable=True)
    p.startup()
    m = Message()
    m.topic, m.body = "orders", b"over tls"
    print("SENT", p.send(m).message_id, flush=True)
    p.shutdown()
""")


def test_tls_sdk_client_in_another_time_zone(start_node: Callable[..., NodeHandle],
                                             tmp_path: Path) -> None:
    ca, cert, key = _make_ca_and_server_cert(tmp_path)
    node = start_node(default_state(), tls=(cert, key))
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(ca), "TZ": "Asia/Shanghai"}
    out = subprocess.run([sys.executable, "-c", _CLIENT, node.endpoint, *ALL_ACCESS],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "SENT " in out.stdout, out.stderr[-3000:]
    assert node.metric("mq_messages_in_total", namespace="ns1", topic="orders") >= 1


def _route_code(node: NodeHandle, topic: str) -> int:
    raw = RawClient(node.endpoint)
    try:
        req = spb.QueryRouteRequest(topic=pb.Resource(resource_namespace="ns1", name=topic))
        return raw.stub.QueryRoute(req, metadata=sign_headers(*ALL_ACCESS), timeout=5).status.code
    finally:
        raw.close()


def test_state_reload_on_change_keeps_last_good(node: NodeHandle) -> None:
    assert _route_code(node, "new-topic") == pb.Code.TOPIC_NOT_FOUND
    state = default_state(version=2)
    state["namespaces"]["ns1"]["topics"]["new-topic"] = {"queues": 1}
    node.update_state(state)
    node.wait_for_state_version(2)
    assert _route_code(node, "new-topic") == pb.Code.OK
    # A broken document is refused; version 2 keeps serving and health reports the error.
    node.state_file.write_text('{"version": 3, "namespaces": {"ns1": {"topics": 5}}}')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = node.http_get("/healthz")[1]
        if "must be an object" in health:
            break
        time.sleep(0.1)
    assert '"state_version": 2' in health and "topics" in health
    assert _route_code(node, "new-topic") == pb.Code.OK
    # SIGHUP reloads at once (no wait for the poll).
    state = default_state(version=4)
    node.update_state(state)
    node.process.send_signal(signal.SIGHUP)
    node.wait_for_state_version(4)
    assert _route_code(node, "new-topic") == pb.Code.TOPIC_NOT_FOUND


def test_sigterm_stops_gracefully_with_clients_connected(node: NodeHandle) -> None:
    from rocketmq import Producer

    producer = Producer(node.client_config(*ALL_ACCESS), ("orders",))
    producer.startup()  # holds a Telemetry stream open
    try:
        assert node.stop() == 0  # open Telemetry streams are ended, not left hanging
        assert "node stopped" in node.log_text()
    finally:
        producer.shutdown()


def test_refuses_to_start_with_a_bad_state_file(tmp_path: Path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text('{"version": "one"}')
    out = subprocess.run([sys.executable, "-m", "brokers.node", "--state-file", str(bad),
                          "--data-dir", str(tmp_path / "d"), "--grpc-port", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "$.version" in out.stderr
