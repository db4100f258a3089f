"""Silences: set and end them (the muter in ``mute.py`` applies them)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from supervision.alerting.models import AlertKind
from supervision.notify.models import Silence
from supervision.registry.models import Mine

MAX_SILENCE_S = 30 * 86400


class SilenceInputError(ValueError):
    """A silence that cannot be set; the message says why."""


def create_silence(
    db: Session, mine: Mine, *, kind: str | None, duration_s: float, comment: str, actor: str,
    now_ns: int,
) -> Silence:  # fmt: skip
    if kind is not None and kind not in {k.value for k in AlertKind}:
        raise SilenceInputError(f"unknown alert kind {kind!r}; use one of {', '.join(AlertKind)}")
    if not 60 <= duration_s <= MAX_SILENCE_S:
        raise SilenceInputError(f"a silence lasts 60 s to 30 days, got {duration_s:g} s")
    if not comment.strip():
        raise SilenceInputError("say why: a silence needs a comment")
    s = Silence(
        mine_id=mine.id, kind=kind, comment=comment.strip()[:1000], created_by=actor,
        created_ns=now_ns, expires_ns=now_ns + int(duration_s * 1e9),
    )  # fmt: skip
    db.add(s)
    db.flush()
    return s


def end_silence(db: Session, silence: Silence, actor: str, now_ns: int) -> bool:
    """End ``silence`` now; False if it had ended or expired already."""
    if silence.ended_ns is not None or silence.expires_ns <= now_ns:
        return False
    silence.ended_ns, silence.ended_by = now_ns, actor
    db.flush()
    return True


def is_active(s: Silence, now_ns: int) -> bool:
    return s.expires_ns > now_ns and (s.ended_ns is None or s.ended_ns > now_ns)
