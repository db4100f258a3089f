"""Alert state transitions as a pure function (ARCHITECTURE.md lesson 16).

An alert is ``firing`` from the moment its condition holds until it no
longer does, then ``resolved`` for good (a new occurrence is a new alert).
Acknowledgement, escalation and reminders are markers beside the state,
set by ``service.acknowledge`` / ``escalate`` / ``remind``. :func:`plan`
says what must happen to the open alerts for them to match the rules'
output; ``service.reconcile`` carries it out and records each transition
except ``refresh`` (fresher evidence of the same condition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from supervision.alerting.rules import AlertSpec


class Transition(StrEnum):
    FIRE = "fired"
    UPDATE = "updated"  # summary or severity changed: an event
    REFRESH = "refreshed"  # only the evidence changed: kept, no event
    RESOLVE = "resolved"


@dataclass(frozen=True, slots=True)
class OpenAlert:
    summary: str
    severity: str
    evidence: dict[str, Any]


def plan(
    open_alerts: Mapping[str, OpenAlert], desired: Mapping[str, AlertSpec]
) -> list[tuple[Transition, str]]:
    """(transition, fingerprint) pairs: desired ones in their order, then
    the resolutions. Nothing for an open alert whose spec is unchanged."""
    out: list[tuple[Transition, str]] = []
    for fp, spec in desired.items():
        cur = open_alerts.get(fp)
        if cur is None:
            out.append((Transition.FIRE, fp))
        elif (cur.summary, cur.severity) != (spec.summary, spec.severity):
            out.append((Transition.UPDATE, fp))
        elif cur.evidence != spec.evidence:
            out.append((Transition.REFRESH, fp))
    out.extend((Transition.RESOLVE, fp) for fp in open_alerts if fp not in desired)
    return out
