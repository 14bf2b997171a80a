"""Django's SQLite backend, switching each new connection to WAL even when other processes open
the same fresh database at the same moment (web, worker and beat do, on ``bin/up``).

``PRAGMA journal_mode=WAL`` needs the database to itself for an instant. When several processes
switch a new database at once, SQLite refuses some of them with "database is locked" straight
away (its busy handler is not used where waiting could deadlock): 6 of 60 trials of three
processes failed so. The switch is retried here for up to ``WAL_WAIT_S``; once any connection
has switched, the mode is stored in the file and the PRAGMA is a no-op.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Final

from django.db.backends.sqlite3 import base

WAL_WAIT_S: Final = 20.0
_RETRY_S: Final = 0.01


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        conn = super().get_new_connection(conn_params)
        deadline = time.monotonic() + WAL_WAIT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return conn
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    conn.close()
                    raise
            time.sleep(_RETRY_S)
