"""Django's SQLite backend for the embedded default, with a WAL switch that waits its turn."""
