"""The data directory's fixed layout parameters, remembered across restarts.

Segment sizes decide file names and offsets, so they cannot change once data exists. The first
open writes ``<root>/layout`` (JSON); later opens adopt the values found there, whatever the
config says, and log the difference.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace

from .config import StoreConfig
from .paths import StorePaths

log = logging.getLogger(__name__)
_FIELDS = ("segment_bytes", "cq_segment_entries")


def effective_config(config: StoreConfig) -> StoreConfig:
    """``config`` with the layout parameters of an existing data directory (see module doc)."""
    path = StorePaths(config.root).layout
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        config.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({f: getattr(config, f) for f in _FIELDS}))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return config
    changes = {f: int(found[f]) for f in _FIELDS if f in found and int(found[f]) != getattr(config, f)}
    if changes:
        log.warning("data directory %s keeps its layout %s (config asked otherwise)", config.root, changes)
        return replace(config, **changes)
    return config
