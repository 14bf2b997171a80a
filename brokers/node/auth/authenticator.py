"""Who is calling, for which namespace, and may they do this? Sans-io; the caller passes time.

``Authenticator`` is rebuilt from each desired state (an AK -> (namespace, credential) index).
It resolves the tenant from ``x-mq-namespace`` (falling back to the request's
``Resource.resource_namespace``), verifies the signature, and checks that the credential belongs
to that namespace, so a credential of namespace A never reaches namespace B.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from brokers.node.config.state import (
    Action,
    Credential,
    DesiredState,
    NamespaceSpec,
    ResourceKind,
)

from .acl import IpAddress, is_allowed
from .signature import (
    SignatureError,
    SignatureProblem,
    is_fresh,
    parse_authorization,
    parse_request_time,
    verify_signature,
)


_VERIFIED_MEMO_SIZE: Final = 4096


class AuthFailure(enum.Enum):
    UNAUTHENTICATED = "unauthenticated"  # -> UNAUTHORIZED 40100
    FORBIDDEN = "forbidden"  # -> FORBIDDEN 40300


class AuthError(Exception):
    """Refusal with a message that is safe to log and return (never contains secrets)."""

    def __init__(self, failure: AuthFailure, message: str, access_key: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.access_key = access_key


@dataclass(frozen=True, slots=True)
class Principal:
    namespace: NamespaceSpec
    credential: Credential
    source: IpAddress | None
    #: ACL decisions already taken for this principal, (kind, name, action) -> allowed. The
    #: gRPC layer reuses one Principal for all calls carrying the same signed header (a client
    #: signs once per second), so the rules are evaluated once per resource, not per call.
    _decisions: dict[Any, bool] = field(default_factory=dict, compare=False, repr=False)

    def require(self, kind: ResourceKind, name: str, action: Action) -> None:
        """Raise AuthError(FORBIDDEN) unless the credential's ACL grants ``action``."""
        key = (kind, name, action)
        allowed = self._decisions.get(key)
        if allowed is None:
            allowed = is_allowed(self.credential.acl, kind, name, action, self.source)
            if len(self._decisions) < 256:
                self._decisions[key] = allowed
        if not allowed:
            raise AuthError(
                AuthFailure.FORBIDDEN,
                f"access key {self.credential.access_key} has no {action.value} permission "
                f"on {kind.value} {name!r}",
                self.credential.access_key,
            )


def resolve_namespace(header_ns: str | None, resource_namespaces: Iterable[str]) -> str:
    """The one namespace a request addresses; header first, Resources must agree with it."""
    candidates = {ns for ns in resource_namespaces if ns}
    if header_ns:
        candidates.discard(header_ns)
        if candidates:
            raise AuthError(
                AuthFailure.UNAUTHENTICATED,
                f"namespace mismatch: header {header_ns!r} vs resource {sorted(candidates)[0]!r}",
            )
        return header_ns
    if len(candidates) > 1:
        raise AuthError(AuthFailure.UNAUTHENTICATED, "resources name different namespaces")
    return candidates.pop() if candidates else ""


class Authenticator:
    """Verifies request signatures against one desired state."""

    def __init__(self, state: DesiredState, skew_s: float = 300.0) -> None:
        self._skew_s = skew_s
        self._verified: set[tuple[str, str, bytes]] = set()
        #: Admitted calls by their identifying headers (filled and read by the gRPC boundary;
        #: belongs to this state: a new state builds a new Authenticator, so nothing stale).
        self.admitted: dict[Any, Any] = {}
        self._by_ak: dict[str, tuple[NamespaceSpec, Credential]] = {
            ak: (ns, cred) for ns in state.namespaces.values() for ak, cred in ns.credentials.items()
        }

    def is_fresh(self, date_time: str, now_s: float) -> bool:
        """Freshness alone, for a request whose signature was already verified."""
        try:
            return is_fresh(parse_request_time(date_time), now_s, self._skew_s)
        except SignatureError:
            return False

    def authenticate(
        self,
        headers: Mapping[str, str],
        namespace: str,
        now_s: float,
        source: IpAddress | None,
        check_freshness: bool = True,
    ) -> Principal:
        """Verify the signature in ``headers`` for a request addressed to ``namespace``."""
        header = headers.get("authorization")
        if not header:
            raise _unauth(SignatureProblem.MISSING_AUTHORIZATION)
        date_time = headers.get("x-mq-date-time")
        if not date_time:
            raise _unauth(SignatureProblem.MISSING_DATE)
        try:
            parsed = parse_authorization(header)
            if check_freshness and not is_fresh(parse_request_time(date_time), now_s, self._skew_s):
                raise SignatureError(SignatureProblem.STALE, parsed.access_key)
        except SignatureError as exc:
            raise _unauth(exc.problem, exc.access_key) from None
        entry = self._by_ak.get(parsed.access_key)
        if entry is None or not entry[1].enabled:
            raise _unauth(SignatureProblem.UNKNOWN_KEY, parsed.access_key)
        ns, cred = entry
        # The signature covers only the date-time, so one (AK, date-time, signature) triple is
        # valid or not for the life of this state; remember the good ones (bounded) instead of
        # recomputing the HMAC on every call. Freshness was still checked above.
        memo_key = (parsed.access_key, date_time, parsed.signature)
        if memo_key not in self._verified:
            if not verify_signature(parsed, date_time, cred.secrets):
                raise _unauth(SignatureProblem.BAD_SIGNATURE, parsed.access_key)
            if len(self._verified) >= _VERIFIED_MEMO_SIZE:
                self._verified.clear()
            self._verified.add(memo_key)
        if ns.name != namespace:
            # Same answer whether the namespace exists or not: no probing of other tenants.
            raise AuthError(
                AuthFailure.UNAUTHENTICATED,
                f"access key {parsed.access_key} is not valid for namespace {namespace!r}",
                parsed.access_key,
            )
        return Principal(namespace=ns, credential=cred, source=source)


def _unauth(problem: SignatureProblem, access_key: str = "") -> AuthError:
    return AuthError(AuthFailure.UNAUTHENTICATED, problem.value, access_key)
