"""Small helpers of the management pages: a change in its own transaction,
form values parsed with the field at fault named, licence files stored."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from supervision.context import PlatformContext

T = TypeVar("T")

#: an uploaded licence file is at most this large
LICENCE_MAX_BYTES = 2 * 1024 * 1024


class FieldError(ValueError):
    """A form value that cannot be used; shown next to ``field``."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


def in_transaction(ctx: PlatformContext, change: Callable[[Session], T]) -> T:
    """Run ``change`` in a transaction of its own: any exception (a refused
    input) rolls back everything it wrote, the audit row with it."""
    with ctx.sessions() as db, db.begin():
        return change(db)


def day(text: str, field: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FieldError(f"a date as YYYY-MM-DD, not {text!r}", field) from None


def number(text: str, field: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FieldError(f"a number, not {text!r}", field) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FieldError(f"a finite number, not {text!r}", field)
    return value


def licence_dir(ctx: PlatformContext) -> Path:
    return Path(ctx.config.uploads.dir).resolve() / "licences"


def store_licence(ctx: PlatformContext, filename: str, data: bytes, mine_code: str) -> str:
    """Check an uploaded licence file with the survey package's reader and
    keep it as ``<uploads.dir>/licences/<mine>-<sha256>.<ext>``: the client's
    file name gives only the extension, never a path. The stored path."""
    from survey.model import SurveyInputError
    from survey.readers.licence_files import load_licence

    ext = Path(filename).suffix.lower()
    if ext not in (".toml", ".geojson", ".json"):
        raise FieldError("a licence file is .toml or .geojson (docs/survey-inputs.md)", "licence")
    if len(data) > LICENCE_MAX_BYTES:
        raise FieldError(f"licence file larger than {LICENCE_MAX_BYTES // 1024} KiB", "licence")
    if not data:
        raise FieldError("the licence file is empty", "licence")
    folder = licence_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", mine_code)[:64] or "mine"
    target = folder / f"{safe}-{hashlib.sha256(data).hexdigest()[:16]}{ext}"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=ext, delete=False) as tmp:
        tmp.write(data)
    tmp_path = Path(tmp.name)
    try:
        load_licence(tmp_path)
    except SurveyInputError as exc:
        tmp_path.unlink(missing_ok=True)
        text = str(exc).replace(str(tmp_path), filename[:200])
        raise FieldError(f"not a valid licence: {text}", "licence") from None
    tmp_path.replace(target)
    return str(target)
