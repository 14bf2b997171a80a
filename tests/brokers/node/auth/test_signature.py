"""Signature parsing/verification and the time-zone tolerant freshness rule (protocol §1.3-1.4)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from brokers.node.auth import SignatureError, SignatureProblem, is_fresh, parse_authorization
from brokers.node.auth.signature import parse_request_time, verify_signature

NOW = datetime(2026, 11, 21, 14, 14, 45, tzinfo=timezone.utc).timestamp()


def _header(ak: str, sig: str) -> str:
    return f"MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={sig}"


def _sign(sk: str, dt: str) -> str:
    return hmac.new(sk.encode(), dt.encode(), hashlib.sha1).hexdigest()


def test_lower_and_upper_hex_and_scoped_credential_verify() -> None:
    dt = "20261121T141445Z"
    sig = _sign("secret", dt)
    for header in (_header("AK1", sig), _header("AK1/20261121/scope", sig.upper()),
                   f"MQv2-HMAC-SHA1 Credential=AK1,SignedHeaders=x-mq-date-time,Signature={sig}"):
        parsed = parse_authorization(header)
        assert parsed.access_key == "AK1"
        assert verify_signature(parsed, dt, ["secret"])
        assert not verify_signature(parsed, dt, ["other"])
    # Rotation: either of two secrets is accepted.
    assert verify_signature(parse_authorization(_header("AK1", sig)), dt, ["new", "secret"])


@pytest.mark.parametrize("header", ["garbage", "MQv2-HMAC-SHA1 Credential=A",
                                    "MQv2-HMAC-SHA1 Credential=A, Signature=zz"])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError) as info:
        parse_authorization(header)
    assert info.value.problem is SignatureProblem.MALFORMED


@pytest.mark.parametrize("offset_h", [-12, -9.5, 0, 5.75, 8, 14])
def test_local_time_of_any_real_zone_is_fresh(offset_h: float) -> None:
    local = NOW + offset_h * 3600
    stamp = datetime.fromtimestamp(local, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    assert is_fresh(parse_request_time(stamp), NOW, skew_s=300)


@pytest.mark.parametrize("delta_s", [-13 * 3600 - 600, 15 * 3600, 7 * 60 + 30, 3600 + 450])
def test_times_no_zone_explains_are_stale(delta_s: float) -> None:
    assert not is_fresh(NOW + delta_s, NOW, skew_s=300)


def test_small_clock_skew_is_tolerated() -> None:
    assert is_fresh(NOW + timedelta(minutes=4).total_seconds(), NOW, skew_s=300)
    assert is_fresh(NOW + 8 * 3600 - 200, NOW, skew_s=300)


def test_bad_date_format() -> None:
    with pytest.raises(SignatureError) as info:
        parse_request_time("2026-11-21 14:14:45")
    assert info.value.problem is SignatureProblem.BAD_DATE
