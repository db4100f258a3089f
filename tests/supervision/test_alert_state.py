"""The pure transition function of alert states."""

from __future__ import annotations

from supervision.alerting.rules import AlertSpec
from supervision.alerting.state import OpenAlert, Transition, plan


def spec(
    fp: str, summary: str = "s", severity: str = "major", evidence: dict[str, object] | None = None
) -> AlertSpec:
    return AlertSpec(fp, "gateway_offline", 1, None, severity, summary, evidence or {})


def test_plan() -> None:
    open_alerts = {
        "same": OpenAlert("s", "major", {}),
        "fresher": OpenAlert("s", "major", {"v": 1}),
        "worse": OpenAlert("s", "major", {}),
        "reworded": OpenAlert("old", "major", {}),
        "gone": OpenAlert("s", "major", {}),
    }
    desired = {
        "new": spec("new"),
        "same": spec("same"),
        "fresher": spec("fresher", evidence={"v": 2}),
        "worse": spec("worse", severity="critical"),
        "reworded": spec("reworded", summary="new"),
    }
    assert plan(open_alerts, desired) == [
        (Transition.FIRE, "new"),
        (Transition.REFRESH, "fresher"),
        (Transition.UPDATE, "worse"),
        (Transition.UPDATE, "reworded"),
        (Transition.RESOLVE, "gone"),
    ]


def test_nothing_to_do() -> None:
    assert plan({}, {}) == []
    assert plan({"a": OpenAlert("s", "major", {})}, {"a": spec("a")}) == []
