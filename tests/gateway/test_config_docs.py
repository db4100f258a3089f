"""docs/configuration.md states the range of every numeric key the schema
checks, and the two agree (a documented 0..86400 that refuses 0 is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import annotated_types as at
import pytest
from pydantic import BaseModel

from gateway.config.load import MODBUS_UNIT_MAX, MODBUS_UNIT_MIN
from gateway.config.schema import (
    BUS_MODELS,
    DeviceConfig,
    MetricsSection,
    PointOverride,
    SiteSection,
    StatsSection,
    StoreSection,
)

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"
SECTIONS: dict[str, list[type[BaseModel]]] = {
    "`[site]`": [SiteSection],
    "`[store]`": [StoreSection],
    "`[stats]`": [StatsSection],
    "`[metrics]`": [MetricsSection],
    "`[[buses]]`": list(BUS_MODELS.values()),
    "`[[devices]]`": [DeviceConfig],
    "`[devices.points.NAME]`": [PointOverride],
}
#: ranges checked across tables (the unit's range depends on the bus type)
CROSS_CHECKED = {"unit": {"ge": float(MODBUS_UNIT_MIN), "le": float(MODBUS_UNIT_MAX)}}
_NUM = r"-?\d+(?:\.\d+)?"


def _documented_rows() -> list[tuple[str, list[type[BaseModel]], str]]:
    rows, models = [], None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            models = next((m for head, m in SECTIONS.items() if head in line), None)
        elif models and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            key, kind = (
                cells[0].strip("`"),
                cells[2] if models[0] in BUS_MODELS.values() else cells[1],
            )
            rows.append((key, models, kind))
    return rows


def _bounds(kind: str) -> dict[str, float]:
    """'int 1..247' -> ge/le; 'float > 0' -> gt; 'float > 0, at most 60' -> gt/le."""
    if m := re.search(rf"({_NUM})\.\.({_NUM})", kind):
        return {"ge": float(m[1]), "le": float(m[2])}
    out = {}
    if m := re.search(rf"(>=?) ({_NUM})", kind):
        out["ge" if m[1] == ">=" else "gt"] = float(m[2])
    if m := re.search(rf"at most ({_NUM})", kind):
        out["le"] = float(m[1])
    return out


def _checked(model: type[BaseModel], key: str) -> dict[str, float]:
    out = {}
    for c in model.model_fields[key].metadata:
        for name, cls in (("ge", at.Ge), ("gt", at.Gt), ("le", at.Le), ("lt", at.Lt)):
            if isinstance(c, cls):
                out[name] = float(getattr(c, name))
    return out


ROWS = _documented_rows()


def test_every_table_is_found() -> None:
    assert {m[0] for _, m, _ in ROWS} >= {m[0] for m in SECTIONS.values()}
    assert "poll_interval_s" in {k for k, _, _ in ROWS}


@pytest.mark.parametrize(
    ("key", "models", "kind"), ROWS, ids=[f"{m[0].__name__}.{k}" for k, m, _ in ROWS]
)
def test_documented_range_is_the_checked_range(
    key: str, models: list[type[BaseModel]], kind: str
) -> None:
    for model in models:
        if key in model.model_fields:
            checked = CROSS_CHECKED.get(key) or _checked(model, key)
            assert _bounds(kind) == checked, f"{key}: docs say {kind!r}"
