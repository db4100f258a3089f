"""Evaluation cost of the alarm engine (issue 11: 10,000 rules at 1 Hz
under 5 % of one core).

Usage: python -m bench.alarms_bench [--devices 1000] [--seconds 60]

Builds ten rules per gas monitor (CH4 high with a deadband, CH4 power-off,
CH4 sensor fault, CH4 rate of rise, CO high, CO sensor fault, O2 low, CO2
high, comm loss, and a combined condition over this monitor and its
neighbour), then feeds one reading of the monitor's ten points per device
per second of virtual time (CH4 a mean-reverting walk around 0.3 % that
crosses 1.0 % now and then, the other gases noisy below their limits, a
comm loss in one reading of a thousand), calling ``tick`` four times a second as
the service does. Prints the process CPU time per virtual second: the share
of one core the engine needs at 1 Hz.
"""

from __future__ import annotations

import argparse
import random
import time

from gateway.alarms.engine import AlarmEngine
from gateway.alarms.expr import parse
from gateway.alarms.rules import (
    ExprRule,
    LimitKind,
    LimitRule,
    PointRef,
    PowerOffRule,
    QualityKind,
    QualityRule,
    RateRule,
    Rule,
    SensorFaultRule,
)
from gateway.model import Quality, Record, RecordKind

POINTS = ["ch4", "co", "o2", "no2", "h2s", "co2", "temperature", "humidity", "wind_speed", "status"]
S = 1_000_000_000


def rules_for(i: int, n: int) -> list[Rule]:
    d = f"gas{i:05d}"
    ch4, co = PointRef(d, "ch4"), PointRef(d, "co")
    rng = (0.0, 100.0)
    other = f"gas{(i + 1) % n:05d}"
    return [
        LimitRule(name=f"{d}.ch4_high", point=ch4, kind=LimitKind.HIGH, limit=1.0, restore=0.95, valid_range=rng),
        PowerOffRule(name=f"{d}.ch4_power_off", point=ch4, limit=1.5, restore=1.0, latched=True),
        SensorFaultRule(name=f"{d}.ch4_fault", point=ch4, valid_range=rng),
        RateRule(name=f"{d}.ch4_rise", point=ch4, per_min=0.3, window_s=60),
        LimitRule(name=f"{d}.co_high", point=co, kind=LimitKind.HIGH, limit=24.0, restore=22.8),
        SensorFaultRule(name=f"{d}.co_fault", point=co, valid_range=(0.0, 2000.0)),
        LimitRule(name=f"{d}.o2_low", point=PointRef(d, "o2"), kind=LimitKind.LOW, limit=20.0, restore=20.0),
        LimitRule(name=f"{d}.co2_high", point=PointRef(d, "co2"), kind=LimitKind.HIGH, limit=0.5, restore=0.475),
        QualityRule(name=f"{d}.comm_loss", point=ch4, kind=QualityKind.COMM_LOSS),
        ExprRule(name=f"{d}.pair", when=parse(f"{d}.ch4 >= 0.8 and {other}.ch4 >= 0.8")),
    ]  # fmt: skip


def run(devices: int, seconds: int, seed: int = 1) -> dict[str, float]:
    rules = [r for i in range(devices) for r in rules_for(i, devices)]
    clock = [0]
    engine = AlarmEngine(rules, clock=lambda: clock[0])
    rnd = random.Random(seed)
    ch4 = [0.3] * devices
    names = [f"gas{i:05d}" for i in range(devices)]
    # the readings are made first, so only the engine is timed
    seconds_of: list[list[Record]] = []
    for t in range(seconds):
        second: list[Record] = []
        for i, dev in enumerate(names):
            # mean-reverting around 0.3 %, so a few monitors cross 1.0 %
            ch4[i] = min(max(ch4[i] + 0.02 * (0.3 - ch4[i]) + rnd.gauss(0, 0.06), 0.0), 3.0)
            ts = t * S + i * 1000
            if rnd.random() < 0.001:
                rec = Record(RecordKind.SAMPLE, dev, ts, POINTS, [None] * 10, [""] * 10,
                             [Quality.COMM_LOSS] * 10)  # fmt: skip
            else:
                values = [ch4[i], 8 + rnd.gauss(0, 2), 20.7 + rnd.gauss(0, 0.1), 0.1, 0.2,
                          0.3 + rnd.gauss(0, 0.02), 24.0, 80.0, 1.2, 0]  # fmt: skip
                rec = Record(
                    RecordKind.SAMPLE, dev, ts, POINTS, values, [""] * 10, [Quality.GOOD] * 10
                )  # type: ignore[arg-type]
            second.append(rec)
        seconds_of.append(second)
    transitions = 0
    cpu0 = time.process_time()
    for t, second in enumerate(seconds_of):
        for rec in second:
            transitions += len(engine.observe(rec))
        for q in range(4):
            clock[0] = t * S + q * (S // 4)
            transitions += len(engine.tick())
    cpu = time.process_time() - cpu0
    return {
        "rules": float(len(engine.conditions)),
        "virtual_s": float(seconds),
        "cpu_s": cpu,
        "core_share": cpu / seconds,
        "transitions": float(transitions),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    r = run(args.devices, args.seconds)
    print(
        f"{int(r['rules'])} alarms, {args.devices} readings/s of 10 points, "
        f"{int(r['virtual_s'])} s virtual: {r['cpu_s']:.2f} s CPU, "
        f"{r['core_share']:.1%} of one core, {int(r['transitions'])} transitions"
    )


if __name__ == "__main__":
    main()
