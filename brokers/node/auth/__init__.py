"""Authentication (request signatures) and authorization (ACL rules) for the data plane."""

from __future__ import annotations

from .acl import is_allowed, parse_peer, pattern_matches
from .authenticator import AuthError, AuthFailure, Authenticator, Principal, resolve_namespace
from .signature import (
    SignatureError,
    SignatureProblem,
    expected_signature,
    is_fresh,
    parse_authorization,
)

__all__ = [
    "AuthError", "AuthFailure", "Authenticator", "Principal", "SignatureError",
    "SignatureProblem", "expected_signature", "is_allowed", "is_fresh", "parse_authorization",
    "parse_peer", "pattern_matches", "resolve_namespace",
]
