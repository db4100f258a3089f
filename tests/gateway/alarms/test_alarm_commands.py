"""Operator commands (authorisation, refusals with a reply, audit), the
state file across restarts, and the local annunciation (`minegate alarms
list`, the top of `minegate status`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from gateway.alarms import persist
from gateway.alarms.annunciation import status_part
from gateway.alarms.commands import CommandDesk
from gateway.alarms.engine import AlarmEngine
from gateway.alarms.rules import LimitKind, LimitRule, PointRef, PowerOffRule, Priority
from gateway.alarms.state import Status
from gateway.cli import main
from gateway.model import Quality, Record, RecordKind

S = 1_000_000_000
CH4 = PointRef("gas", "ch4")


def rules() -> list[object]:
    return [
        LimitRule(name="ch4", point=CH4, kind=LimitKind.HIGH, limit=1.0, restore=0.95),
        PowerOffRule(
            name="po", point=CH4, limit=1.5, restore=1.0, latched=True, priority=Priority.CRITICAL
        ),
    ]


def engine(states: dict[str, object] | None = None) -> AlarmEngine:
    return AlarmEngine(rules(), clock=lambda: 100 * S, states=states)  # type: ignore[arg-type]


def reading(t: float, v: float) -> Record:
    return Record(RecordKind.SAMPLE, "gas", int(t * S), ["ch4"], [v], ["%"], [Quality.GOOD])


def desk(e: AlarmEngine) -> CommandDesk:
    users = {"li": frozenset({"ack", "shelve", "reset", "oos"}), "guest": frozenset({"list"})}
    return CommandDesk(e, users, max_shelve_h=8, clock=lambda: 100 * S)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (None, "malformed command"),
        ([1, 2], "malformed command"),
        ({"user": "li", "cmd": "fly", "alarm": "ch4"}, "`cmd` must be one of"),
        ({"cmd": "ack", "alarm": "ch4"}, "`user` (a string) is required"),
        ({"user": "mallory", "cmd": "ack", "alarm": "ch4"}, "unknown user 'mallory'"),
        ({"user": "guest", "cmd": "ack", "alarm": "ch4"}, "user 'guest' has no right to ack"),
        ({"user": "li", "cmd": "ack"}, "`alarm` (a string) is required"),
        ({"user": "li", "cmd": "shelve", "alarm": "ch4"}, "shelve needs `hours` > 0"),
        ({"user": "li", "cmd": "shelve", "alarm": "ch4", "hours": 9}, "limited to 8 h"),
        ({"user": "li", "cmd": "ack", "alarm": "ch4", "extra": 1}, "unknown keys ['extra']"),
        ({"user": "li", "cmd": "ack", "alarm": "ch4"}, "waits for no acknowledgement"),
        ({"user": "li", "cmd": "ack", "alarm": "nope"}, "no alarm named 'nope'"),
    ],
)
def test_refused_with_a_reply_and_audited(request_: object, error: str) -> None:
    out = desk(engine()).handle(request_, "mqtt")
    assert out.reply["ok"] is False and error in out.reply["error"]
    assert out.transitions == []
    assert out.audit.kind is RecordKind.EVENT and out.audit.fields["ok"] is False
    assert out.audit.fields["channel"] == "mqtt" and out.audit.fields["error"] == out.reply["error"]


def test_accepted_commands_are_applied_and_audited_with_the_user() -> None:
    e = engine()
    e.observe(reading(1, 1.6))
    d = desk(e)
    out = d.handle(
        {"user": "li", "cmd": "ack", "alarm": "po", "note": "seen", "id": "x1"}, "socket"
    )
    assert out.reply == {"ok": True, "done": [{"alarm": "po", "state": "active_acked"}], "id": "x1"}
    assert out.transitions[0].user == "li" and out.transitions[0].note == "seen"
    assert out.audit.fields == {
        "event": "alarm_command", "channel": "socket", "user": "li", "cmd": "ack",
        "alarm": "po", "ok": True, "note": "seen",
    }  # fmt: skip
    out = d.handle({"user": "li", "cmd": "shelve", "alarm": "ch4", "hours": 1}, "socket")
    assert out.reply["done"] == [{"alarm": "ch4", "state": "shelved"}]
    assert e.states["ch4"].shelved_until_ns == 100 * S + 3600 * S
    out = d.handle(
        {"user": "li", "cmd": "oos", "alarm": "gas.ch4", "note": "calibration"}, "socket"
    )
    assert [x["alarm"] for x in out.reply["done"]] == ["ch4", "po"]
    listed = d.handle({"user": "guest", "cmd": "list"}, "mqtt").reply
    assert {a["alarm"]: a["state"] for a in listed["alarms"]} == {
        "ch4": "out_of_service", "po": "out_of_service",
    }  # fmt: skip


def test_latched_and_unacked_alarms_survive_a_restart(tmp_path: Path) -> None:
    e = engine()
    e.observe(reading(1, 1.6))
    e.observe(reading(2, 0.5))  # condition gone, power-off still latched
    path = persist.state_path(tmp_path)
    persist.save(path, persist.dump(e, 3 * S))
    again = engine(persist.states(persist.read(path)))  # type: ignore[arg-type]
    assert again.states["po"].status is Status.ACTIVE_UNACKED and again.states["po"].latched_on
    assert again.states["ch4"].status is Status.RTN_UNACKED


def test_list_and_status_show_the_active_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e = engine()
    e.observe(reading(1, 1.6))
    persist.save(persist.state_path(tmp_path), persist.dump(e, 100 * S))
    assert main(["alarms", "--data-dir", str(tmp_path), "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["alarm"], a["priority"], a["state"]) for a in listed["alarms"]] == [
        ("po", "critical", "active_unacked"), ("ch4", "high", "active_unacked"),
    ]  # fmt: skip
    table = status_part(tmp_path, 101 * S)
    assert table is not None
    console = Console(record=True, width=160)
    console.print(table)
    text = console.export_text()
    assert "ACTIVE ALARMS (2)" in text and text.index("po") < text.index("ch4 ")


def test_commands_without_a_running_gateway_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alarms", "--data-dir", str(tmp_path), "ack", "ch4", "--user", "li"]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err
    assert main(["alarms", "--data-dir", str(tmp_path), "ack", "ch4"]) == 2
    assert main(["alarms", "--data-dir", str(tmp_path), "list"]) == 1


def test_rules_lists_every_rule_with_its_origin(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parents[3] / "examples" / "site.toml"
    assert main(["alarms", "--config", str(example), "rules"]) == 0
    out = capsys.readouterr().out
    assert "gas_monitor_1.ch4_power_off  power_off critical: >= 1, latched" in out
    assert "[defaults:return_airway]" in out and "[alarms[0]]" in out
    assert "main_fan_1.comm_loss  comm_loss high: device main_fan_1 stops answering" in out
