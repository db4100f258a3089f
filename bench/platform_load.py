"""Load generator of the platform benchmark: N simulated gateways on MQTT.

    python -m bench.platform_load load --port 1883 --gateways 1000 --duration 60
    python -m bench.platform_load victim --port 1883 --site victim-1

``load`` publishes as gateways ``mine-00000/gw01`` ... in the gateway's own
MQTT schema (the records go through ``gateway.sinks.mqtt_schema.MqttEncoder``,
the encoder the gateway's MQTT sink uses): at start an ``online`` status
(retained) per gateway, then per gateway ``DEVICES`` devices of ``POINTS``
points (50 points a gateway) with a snapshot per device every ``--interval``
seconds and 5-minute statistics per device every ``--stat-interval``
seconds, all QoS 1. The snapshots of all devices are spread evenly over the
interval (a real fleet aligns them to wall-clock multiples of 20 s, so a
real platform gets each interval's snapshots as one burst; the sustained
rate is the same). The data of all N gateways goes over ``--connections``
MQTT connections: the platform's work is per message and per gateway, the
broker's connection count is not what is measured. Every second it prints a
JSON line every 0.25 s: messages due by the schedule, sent and acknowledged
by the broker (PUBACK), with its wall-clock time.

``victim`` is one gateway with its own connection and last will (``offline``
/ ``connection lost``, as the gateway's sink sets it): it publishes
``online`` and one snapshot, prints ``ready`` and waits to be killed.

Seqs: the data of this generator carries even seqs, the alarm stream of the
benchmark odd ones (both increasing per gateway, from the wall clock at
start), so two publishers as one gateway never collide on (gateway, seq).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.mqtt_schema import MqttEncoder

PREFIX = "minegate"
DEVICES = ("gas_monitor_1", "gas_monitor_2", "drainage_pump", "power_meter", "aux_fan")
POINTS = tuple(f"p{i:02d}" for i in range(10))
UNITS = ("%", "%", "ppm", "ppm", "m/s", "kW", "A", "V", "degC", "")
GOOD = [Quality.GOOD] * len(POINTS)


def site_name(i: int) -> str:
    return f"mine-{i:05d}"


def seq_base() -> int:
    """Even seq base from the wall clock: later runs never reuse a seq."""
    return time.time_ns() // 1_000_000 * 10_000


def client(port: int, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, keepalive=60)
    return c


class Fleet:
    """The encoders and seqs of N gateways."""

    def __init__(self, first: int, n: int, prefix: str = PREFIX) -> None:
        self.encoders = [MqttEncoder(prefix, site_name(first + i), "gw01") for i in range(n)]
        base = seq_base()
        self.seq = [base] * n

    def next_seq(self, g: int) -> int:
        self.seq[g] += 2
        return self.seq[g]

    def snapshot(self, g: int, d: int, ts_ns: int) -> tuple[str, bytes]:
        k = (ts_ns // 1_000_000_000 + g + d) % 17
        values: list[object] = [round(0.1 * k + i, 2) for i in range(len(POINTS))]
        rec = Record(
            RecordKind.SNAPSHOT, DEVICES[d], ts_ns, list(POINTS), values, list(UNITS), GOOD,  # type: ignore[arg-type]
            seq=self.next_seq(g),
        )  # fmt: skip
        m = self.encoders[g].encode(rec)[0]
        return m.topic, m.payload

    def stat(self, g: int, d: int, ts_ns: int) -> tuple[str, bytes]:
        fields: dict[str, object] = {
            p: {"max": 1.5 + i, "min": 0.5 + i, "mean": 1.0 + i, "count": 300, "window_s": 300}
            for i, p in enumerate(POINTS)
        }
        rec = Record(
            RecordKind.STAT, DEVICES[d], ts_ns, list(POINTS), [None] * len(POINTS), list(UNITS),
            GOOD, fields, seq=self.next_seq(g),
        )  # fmt: skip
        m = self.encoders[g].encode(rec)[0]
        return m.topic, m.payload


def alarm_message(enc: MqttEncoder, seq: int, ts_ns: int, state: str) -> tuple[str, bytes]:
    """A transition of the alarm ``<device>.<point>_high`` as the gateway's
    alarm engine sends it (``gateway.alarms.records``; docs/schema.md):
    ``state`` "raised" is a raise to ``active_unacked``, "cleared" a return
    to ``normal`` (an alarm acknowledged before it cleared)."""
    raised = state == "raised"
    value = 1.05 if raised else 0.4
    after, before = ("active_unacked", "normal") if raised else ("normal", "active_acked")
    rec = Record(
        RecordKind.ALARM, DEVICES[0], ts_ns, [POINTS[0]], [value], [UNITS[0]], [Quality.GOOD],
        {"alarm": f"{DEVICES[0]}.{POINTS[0]}_high", "point": POINTS[0], "severity": "high",
         "state": after, "from": before, "event": "raise" if raised else "clear", "limit": 1.0,
         "message": f"{POINTS[0]} {value} % {state}"},
        seq=seq,
    )  # fmt: skip
    m = enc.encode(rec)[0]
    return m.topic, m.payload


def run_load(args: argparse.Namespace) -> int:
    n = args.gateways
    fleet = Fleet(args.first, n, args.prefix)
    acked = [0] * args.connections
    clients = []
    for c in range(args.connections):
        cl = client(args.port, f"bench-load-{args.first}-{c}-{time.time_ns() % 10**9}")

        def on_publish(*_: object, c: int = c) -> None:
            acked[c] += 1

        cl.on_publish = on_publish
        cl.loop_start()
        clients.append(cl)
    sent = 0
    now_ns = time.time_ns()
    for g, enc in enumerate(fleet.encoders):
        clients[g % len(clients)].publish(
            enc.status_topic, enc.status_payload("online", "start", now_ns), qos=1, retain=True
        )
        sent += 1
    statuses = sent
    slots = n * len(DEVICES)
    t0 = time.monotonic()
    snaps = stats = 0
    next_report = t0
    stop_at = t0 + args.duration
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        ts_ns = time.time_ns()
        due_snaps = int((now - t0) * slots / args.interval)
        while snaps < due_snaps:
            j = snaps % slots
            g, d = divmod(j, len(DEVICES))
            topic, body = fleet.snapshot(g, d, ts_ns)
            clients[g % len(clients)].publish(topic, body, qos=1, retain=True)
            snaps += 1
        due_stats = int((now - t0) * slots / args.stat_interval)
        while stats < due_stats:
            j = (stats * 7919) % slots  # another order than the snapshots
            g, d = divmod(j, len(DEVICES))
            topic, body = fleet.stat(g, d, ts_ns)
            clients[g % len(clients)].publish(topic, body, qos=1)
            stats += 1
        if now >= next_report:
            due = statuses + int((now - t0) * slots / args.interval)
            due += int((now - t0) * slots / args.stat_interval)
            line = {"t": time.time(), "due": due, "sent": statuses + snaps + stats,
                    "acked": sum(acked), "statuses": statuses}  # fmt: skip
            print(json.dumps(line), flush=True)
            next_report = now + 0.25
        time.sleep(0.01)
    total = statuses + snaps + stats
    deadline = time.monotonic() + 30
    while sum(acked) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    print(json.dumps({"t": time.time(), "due": total, "sent": total, "acked": sum(acked),
                      "statuses": statuses, "final": True}), flush=True)  # fmt: skip
    for cl in clients:
        cl.disconnect()
        cl.loop_stop()
    return 0


def run_victim(args: argparse.Namespace) -> int:
    enc = MqttEncoder(args.prefix, args.site, "gw01")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-victim-{args.site}")
    c.will_set(enc.status_topic, enc.status_payload("offline", "connection lost", time.time_ns()),
               qos=1, retain=True)  # fmt: skip
    c.connect("127.0.0.1", args.port, keepalive=30)
    c.loop_start()
    ts = time.time_ns()
    c.publish(enc.status_topic, enc.status_payload("online", "start", ts), qos=1, retain=True).wait_for_publish(10)  # fmt: skip
    rec = Record(
        RecordKind.SNAPSHOT, DEVICES[0], ts, list(POINTS), [0.1] * len(POINTS), list(UNITS), GOOD,  # type: ignore[arg-type]
        seq=seq_base(),
    )  # fmt: skip
    m = enc.encode(rec)[0]
    c.publish(m.topic, m.payload, qos=1).wait_for_publish(10)
    print("ready", flush=True)
    threading.Event().wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.platform_load", description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)
    load = sub.add_parser("load", help="N gateways' snapshots and statistics")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--prefix", default=PREFIX)
    load.add_argument("--first", type=int, default=0, help="index of the first gateway")
    load.add_argument("--gateways", type=int, required=True)
    load.add_argument("--connections", type=int, default=4)
    load.add_argument("--interval", type=float, default=20.0, help="snapshot interval, s")
    load.add_argument("--stat-interval", type=float, default=300.0, help="statistics window, s")
    load.add_argument("--duration", type=float, required=True, help="seconds, then exit")
    victim = sub.add_parser("victim", help="one gateway with a last will, to be killed")
    victim.add_argument("--port", type=int, required=True)
    victim.add_argument("--prefix", default=PREFIX)
    victim.add_argument("--site", required=True)
    args = ap.parse_args(argv)
    return run_load(args) if args.cmd == "load" else run_victim(args)


if __name__ == "__main__":
    sys.exit(main())
