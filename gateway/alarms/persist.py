"""The alarm states on disk: ``<data_dir>/alarms.json``.

The running gateway rewrites it (atomically: a temporary file renamed over
it) at most once a second while alarms change, so that

* a restart keeps latched, shelved, out-of-service and unacknowledged
  alarms as they were (ISA-18.2: a restart must not silently clear them);
* ``minegate status`` and ``minegate alarms list`` show the alarms without
  asking the running process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.alarms.commands import view_dict
from gateway.alarms.engine import AlarmEngine
from gateway.alarms.state import AlarmState

STATE_FILENAME = "alarms.json"
SOCKET_FILENAME = "alarms.sock"
_STATE_KEYS = (
    "condition",
    "latched_on",
    "acked",
    "shelved_until_ns",
    "suppressed",
    "out_of_service",
    "since_ns",
)


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILENAME


def dump(engine: AlarmEngine, saved_ns: int) -> dict[str, Any]:
    alarms = []
    for aid, st in engine.states.items():
        entry = view_dict(engine.view(aid))
        entry["memory"] = {k: getattr(st, k) for k in _STATE_KEYS}
        alarms.append(entry)
    return {"saved_ns": saved_ns, "alarms": alarms}


def save(path: Path, data: dict[str, Any]) -> None:
    """Replace the file at once; on a refused write (a full disk) the old
    file stays whole and the partial temporary file is removed, giving its
    blocks back."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any] | None:
    """The saved file, or None when there is none (or it is unreadable:
    the states then start afresh, which the caller logs)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def states(data: dict[str, Any] | None) -> dict[str, AlarmState]:
    out: dict[str, AlarmState] = {}
    for entry in (data or {}).get("alarms", []):
        mem = entry.get("memory") if isinstance(entry, dict) else None
        if not isinstance(mem, dict):
            continue
        try:
            out[str(entry["alarm"])] = AlarmState(**{k: mem[k] for k in _STATE_KEYS})
        except (KeyError, TypeError):
            continue
    return out
