"""The benchmark's MQTT subscriber: counts delivered values per tool and the
latency from poll to receipt, and answers thingsboard-gateway's session
limits request.

Run as ``python -m bench.gateway_sub --port P``; it connects to the broker on
127.0.0.1:P (reconnecting when the broker restarts) and takes commands on
stdin, one per line, answering each with one JSON line on stdout:

* ``start TOOL``: open a counting window for TOOL (counts reset);
* ``stop TOOL``: close it; answers messages, values, window seconds,
  latency percentiles (ms) and parse errors;
* ``quit``.

Topics and what a value and a timestamp are, per tool:

* minegate ``bench/minegate/<site>/<gw>/telemetry/<device>``: one SAMPLE
  record per message, ``values`` holds its points, ``ts_ns`` is when the
  read was sent to the device;
* modpoll ``bench/modpoll/<device>/data``: one device per message, every key
  but ``timestamp`` is a value; ``timestamp`` (``--timestamp``) is the start
  of modpoll's poll cycle (so its latency includes the cycle's other reads);
* thingsboard ``v1/gateway/telemetry``: ``{device: [{"ts": ms, "values":
  {...}}]}``; ``ts`` is taken by its converter right after the read.

A message's latency is its receipt time minus that timestamp (one clock: all
processes run on this machine).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

MINEGATE_PREFIX = "bench/minegate"
MODPOLL_PREFIX = "bench/modpoll"
TB_TELEMETRY = "v1/gateway/telemetry"
TB_RPC_REQUEST = "v1/devices/me/rpc/request/"
TB_RPC_RESPONSE = "v1/devices/me/rpc/response/"
SUBSCRIPTIONS = [
    f"{MINEGATE_PREFIX}/+/+/telemetry/+",
    f"{MODPOLL_PREFIX}/+/data",
    TB_TELEMETRY,
    TB_RPC_REQUEST + "+",
]
#: what the benchmark answers to getSessionLimits: no rate limits at all
TB_SESSION_LIMITS = {
    "rateLimits": {},
    "gatewayRateLimits": {},
    "maxInflightMessages": 10000,
    "maxPayloadSize": 10_000_000,
}
MAX_LATENCIES = 2_000_000  # per window; bounds memory on very long runs


@dataclass
class Window:
    open: bool = False
    started: float = 0.0
    messages: int = 0
    values: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_rx: float = 0.0
    last_rx: float = 0.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, Window] = {}
        self.rpc_answered = 0

    def start(self, tool: str) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            self.windows[tool] = Window(open=True, started=now)
        return {"tool": tool, "started": now}

    def stop(self, tool: str) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            w = self.windows.pop(tool, Window(started=now))
        lat = sorted(w.latencies_ms)

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {
            "tool": tool,
            "window_s": round(now - w.started, 3),
            "messages": w.messages,
            "values": w.values,
            "errors": w.errors,
            "latency_samples": len(lat),
            "latency_p50_ms": r(percentile(lat, 50)),
            "latency_p99_ms": r(percentile(lat, 99)),
            "latency_max_ms": r(lat[-1] if lat else None),
            "first_rx": w.first_rx,
            "last_rx": w.last_rx,
            "rpc_answered": self.rpc_answered,
        }

    def add(self, tool: str, rx: float, values: int, stamps_s: list[float], error: bool) -> None:
        with self.lock:
            w = self.windows.get(tool)
            if w is None or not w.open:
                return
            if error:
                w.errors += 1
                return
            w.messages += 1
            w.values += values
            if not w.first_rx:
                w.first_rx = rx
            w.last_rx = rx
            if len(w.latencies_ms) < MAX_LATENCIES:
                w.latencies_ms.extend((rx - s) * 1000.0 for s in stamps_s)


def handle(counter: Counter, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
    rx = time.time()
    topic = msg.topic
    try:
        if topic.startswith(MINEGATE_PREFIX):
            obj = json.loads(msg.payload)
            counter.add("minegate", rx, len(obj["values"]), [obj["ts_ns"] / 1e9], False)
        elif topic.startswith(MODPOLL_PREFIX):
            obj = json.loads(msg.payload)
            stamp = obj.pop("timestamp", None)
            counter.add("modpoll", rx, len(obj), [] if stamp is None else [float(stamp)], False)
        elif topic == TB_TELEMETRY:
            obj = json.loads(msg.payload)
            n = 0
            stamps: list[float] = []
            for items in obj.values():
                for item in items if isinstance(items, list) else [items]:
                    n += len(item.get("values", {}))
                    if "ts" in item:
                        stamps.append(item["ts"] / 1000.0)
            counter.add("thingsboard", rx, n, stamps, False)
        elif topic.startswith(TB_RPC_REQUEST):
            obj = json.loads(msg.payload)
            if obj.get("method") == "getSessionLimits":
                req_id = topic[len(TB_RPC_REQUEST) :]
                client.publish(TB_RPC_RESPONSE + req_id, json.dumps(TB_SESSION_LIMITS), qos=1)
                with counter.lock:
                    counter.rpc_answered += 1
    except (ValueError, KeyError, TypeError, AttributeError):
        tool = (
            "minegate"
            if topic.startswith(MINEGATE_PREFIX)
            else "modpoll"
            if topic.startswith(MODPOLL_PREFIX)
            else "thingsboard"
        )
        counter.add(tool, rx, 0, [], True)


def make_client(port: int, counter: Counter) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"minegate-bench-sub-{port}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        if not rc.is_failure:
            c.subscribe([(t, 0) for t in SUBSCRIPTIONS])

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        handle(counter, c, msg)

    client.on_connect = on_connect
    client.on_message = on_message
    client.reconnect_delay_set(1, 2)
    client.connect_async("127.0.0.1", port, keepalive=30)
    return client


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--max-s", type=float, default=3600.0, help="exit after this many seconds")
    args = ap.parse_args(argv)
    counter = Counter()
    client = make_client(args.port, counter)
    client.loop_start()
    deadline = time.monotonic() + args.max_s
    timer = threading.Timer(args.max_s, lambda: sys.stdin.close())
    timer.daemon = True
    timer.start()
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if time.monotonic() > deadline:
                break
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "start":
                out = counter.start(arg)
            elif cmd == "stop":
                out = counter.stop(arg)
            elif cmd == "connected":
                out = {"connected": client.is_connected()}
            elif cmd == "quit":
                break
            else:
                out = {"error": f"unknown command {line.strip()!r}"}
            print(json.dumps(out), flush=True)
    except (ValueError, OSError):
        pass  # stdin closed by the timer
    finally:
        client.loop_stop()
        client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
