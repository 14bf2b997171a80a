"""Message filters: RocketMQ tag expressions and SQL92 over message properties.

``compile_filter(FilterType.TAG, "a || b")`` or ``compile_filter(FilterType.SQL, "a > 3")``
returns a ``MessageFilter`` (immutable, cached, safe to share). A bad expression raises
``FilterError`` whose ``code`` is ``"ILLEGAL_FILTER_EXPRESSION"``: that is the only exception
compiling or evaluating a filter can raise. Nothing here uses ``eval``.
"""

from __future__ import annotations

from brokers.node.filter.base import (
    MATCH_ALL,
    FilterError,
    FilterType,
    MessageFilter,
    compile_filter,
)

__all__ = ["MATCH_ALL", "FilterError", "FilterType", "MessageFilter", "compile_filter"]
