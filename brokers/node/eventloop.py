"""Which asyncio event loop the node runs on.

uvloop (a dependency, requirements.txt) is the default: its callbacks, handles and task wake-ups
are implemented in C, where asyncio's ``call_soon``/``Handle`` are Python. The store resolves the
appends of one writer batch by waking every appender's task, so on asyncio's loop those wake-ups
were ~40% of the GIL time of concurrent single appends (py-spy ``--gil``); on uvloop the loop
thread's CPU per append fell from 2.5-3.1 us to 1.1-1.6 us (docs/performance.md, third round).
``asyncio`` stays selectable (``--event-loop asyncio``) to compare or to rule the loop out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

CHOICES: Final = ("auto", "asyncio", "uvloop")
T = TypeVar("T")


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the chosen loop, or None for asyncio's default loop.

    ``auto`` = uvloop when it can be imported, else asyncio; ``uvloop`` insists on it."""
    if choice not in CHOICES:
        raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event-loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop this code runs on, for logs and benchmark headers."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def run(main: Awaitable[T], choice: str = "auto") -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)  # type: ignore[arg-type]
