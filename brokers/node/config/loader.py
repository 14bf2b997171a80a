"""Load the desired-state file and keep the last good state when a new version is bad."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from .state import EMPTY_STATE, DesiredState, StateError, parse_desired_state

log = logging.getLogger("brokers.node.config")


def load_state_file(path: Path) -> DesiredState:
    """Read and validate ``path``; raises StateError (also for I/O and JSON errors)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateError("$", f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError("$", f"not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    return parse_desired_state(doc)


class StateHolder:
    """Owns the current state; ``reload()`` swaps it in only if the file parses and validates.

    Listeners are called with the new state after every successful change, on the event loop's
    thread (the holder itself does no I/O scheduling: the server polls it).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: DesiredState = EMPTY_STATE
        self.last_error: str | None = None
        self._mtime: tuple[int, int] | None = None
        self._listeners: list[Callable[[DesiredState], None]] = []

    def subscribe(self, listener: Callable[[DesiredState], None]) -> None:
        self._listeners.append(listener)

    def changed_on_disk(self) -> bool:
        """True when the file's mtime (or size) differs from the last load attempt."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        return (st.st_mtime_ns, st.st_size) != self._mtime

    def reload(self) -> bool:
        """Try to load the file; returns True if a new state was applied."""
        try:
            st = self.path.stat()
            self._mtime = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass
        try:
            state = load_state_file(self.path)
        except StateError as exc:
            self.last_error = str(exc)
            log.error("desired state refused, keeping version %d: %s", self.current.version, exc)
            return False
        self.last_error = None
        if state == self.current:
            return False
        previous = self.current.version
        self.current = state
        log.info(
            "desired state version %d applied (was %d): %d namespace(s)",
            state.version, previous, len(state.namespaces),
        )
        for listener in self._listeners:
            listener(state)
        return True
