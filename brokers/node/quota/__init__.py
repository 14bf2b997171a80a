"""Per-namespace quotas enforced on the data plane."""

from __future__ import annotations

from .bucket import TokenBucket
from .limits import QuotaDecision, QuotaManager, QuotaVerdict

__all__ = ["QuotaDecision", "QuotaManager", "QuotaVerdict", "TokenBucket"]
