"""The gateway's self-metrics: how well is it polling, and is it keeping up?

"Metrics" are these counters about the gateway itself; "statistics" are the
regulatory 5-minute records of the measured values (``gateway.stats``).

Pollers and the writer update plain counters in memory (no locks: everything
runs on one event loop). Every ``metrics.interval_s`` the runtime turns a
snapshot into one METRIC record (device ``"gateway"``, points named
``total.polls``, ``main_fan_1.errors.timeout``, ...) that goes into the store
like any other record, so ``minegate status`` and the sinks see the same
numbers, and bumps the store's persistent counters by the deltas.

Components that keep their own counters (a bus hub's ``HubMetrics``, a sink
runner's delivery state) register them once with the
:class:`MetricsRegistry` under a prefix (``bus.<name>``, ``sink.<name>``);
every METRIC record gathers them from there.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from drivers.errors import ErrorKind
from drivers.types import Value
from gateway.model import Quality, Record, RecordKind

METRICS_SOURCE = "gateway"
# ``total.latency_*``: over the last latency_window requests of up to this
# many devices' worth (all devices' requests together, newest first out)
TOTAL_WINDOWS = 10


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


MetricsReader = Callable[[], Mapping[str, Value]]


class MetricsRegistry:
    """The components' own metrics, by prefix, in registration order."""

    def __init__(self) -> None:
        self._readers: dict[str, MetricsReader] = {}

    def register(self, prefix: str, read: MetricsReader) -> None:
        """Add ``read()``'s ``{name: value}`` to every METRIC record, as
        ``<prefix>.<name>``. A prefix is registered once."""
        if prefix in self._readers:
            raise ValueError(f"metrics prefix {prefix!r} is already registered")
        self._readers[prefix] = read

    def collect(self) -> dict[str, Value]:
        return {
            f"{prefix}.{name}": value
            for prefix, read in self._readers.items()
            for name, value in read().items()
        }


class LatencyWindow:
    """The last ``size`` request latencies (seconds), oldest first.

    A ring over an ``array('d')``: 8 bytes a latency, where a deque of
    floats takes 32; with 2,000 devices and the default window of 1,000
    that is 16 MB instead of 64. Grows as latencies come, up to ``size``."""

    __slots__ = ("_buf", "_pos", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf = array("d")
        self._pos = 0  # the oldest entry once full

    def append(self, latency_s: float) -> None:
        buf = self._buf
        if len(buf) < self.size:
            buf.append(latency_s)
        else:
            buf[self._pos] = latency_s
            self._pos = (self._pos + 1) % self.size

    def resize(self, size: int) -> None:
        """A larger window (never smaller), keeping what it holds."""
        if size > self.size:
            if self._pos:
                self._buf = array("d", itertools.chain(self._buf[self._pos :], self._buf[: self._pos]))  # fmt: skip
                self._pos = 0
            self.size = size

    def __len__(self) -> int:
        return len(self._buf)

    def __iter__(self) -> Iterator[float]:
        buf, pos = self._buf, self._pos
        return itertools.chain(buf[pos:], buf[:pos]) if pos else iter(buf)


@dataclass
class DeviceMetrics:
    """Counters of one device's poller."""

    latency_window: int = 1000
    polls: int = 0  # poll cycles run
    failed_polls: int = 0  # cycles in which no request got an answer
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by ErrorKind value
    overruns: int = 0  # schedule slots missed because a cycle ran long
    comm_losses: int = 0  # times the device went into comm loss
    readings: int = 0  # values read from the device (before report by exception)
    records: int = 0  # records handed to the writer
    values: int = 0  # values in those records
    state: str = "unknown"  # unknown | online | comm_loss
    last_ok_ns: int = 0  # wall time of the last answered request
    # the gateway's window of every device's requests, fed too when given
    total: LatencyWindow | None = field(default=None, repr=False)
    latencies: LatencyWindow = field(init=False)

    def __post_init__(self) -> None:
        self.latencies = LatencyWindow(self.latency_window)

    def request_ok(self, latency_s: float) -> None:
        self.requests += 1
        self.latencies.append(latency_s)
        if self.total is not None:
            self.total.append(latency_s)

    def request_failed(self, kind: ErrorKind) -> None:
        self.requests += 1
        self.errors[kind.value] += 1

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


@dataclass
class WriterMetrics:
    records_stored: int = 0
    values_stored: int = 0
    batches: int = 0
    backpressure: int = 0  # times a producer found the queue full and had to wait
    store_errors: int = 0
    slow_alarm_commits: int = 0  # alarms sent live because their commit was slow


class GatewayMetrics:
    """All counters of one gateway process."""

    def __init__(self, latency_window: int = 1000) -> None:
        self.latency_window = latency_window
        self.devices: dict[str, DeviceMetrics] = {}
        self.writer = WriterMetrics()
        self.registry = MetricsRegistry()
        self.queue_depth = 0
        self.store_bytes = 0
        self._last_stored = 0
        self._last_at_ns = 0
        self._last_counters: dict[str, int] = {}
        # every device's requests: a copy of all their windows at each
        # snapshot would take (and sort) 2 million floats at 2,000 devices
        self._total_latencies = LatencyWindow(latency_window)

    def device(self, name: str) -> DeviceMetrics:
        stats = self.devices.get(name)
        if stats is None:
            total = self._total_latencies
            stats = self.devices[name] = DeviceMetrics(
                latency_window=self.latency_window, total=total
            )
            total.resize(self.latency_window * min(len(self.devices), TOTAL_WINDOWS))
        return stats

    def totals(self) -> DeviceMetrics:
        """The sums over every device; latencies: the last requests of all
        of them (``latency_window`` per device, up to ``TOTAL_WINDOWS`` of
        them)."""
        total = DeviceMetrics(latency_window=1)
        for d in self.devices.values():
            total.polls += d.polls
            total.failed_polls += d.failed_polls
            total.requests += d.requests
            total.errors.update(d.errors)
            total.overruns += d.overruns
            total.comm_losses += d.comm_losses
            total.readings += d.readings
            total.records += d.records
            total.values += d.values
        total.latencies = self._total_latencies
        return total

    def counters(self) -> dict[str, int]:
        """Monotonic counters, for the store's persistent counter table.
        Cheap (no latency copies): the runtime asks before every batch.
        ``records_stored`` and ``values_stored`` are not here: the runtime
        adds them in each batch's own transaction (``Store.append``)."""
        ds = self.devices.values()
        errors: Counter[str] = Counter()
        for d in ds:
            errors.update(d.errors)
        out = {
            "polls": sum(d.polls for d in ds),
            "readings": sum(d.readings for d in ds),
            "failed_polls": sum(d.failed_polls for d in ds),
            "requests": sum(d.requests for d in ds),
            "request_errors": errors.total(),
            "overruns": sum(d.overruns for d in ds),
            "comm_losses": sum(d.comm_losses for d in ds),
            "backpressure": self.writer.backpressure,
        }
        for kind, n in errors.items():
            out[f"errors.{kind}"] = n
        return out

    def counter_deltas(self) -> dict[str, int]:
        """Increase of each counter since the last call (for ``Store.bump``)."""
        now = self.counters()
        deltas = {k: v - self._last_counters.get(k, 0) for k, v in now.items()}
        self._last_counters = now
        return {k: v for k, v in deltas.items() if v}

    def snapshot(self, ts_ns: int) -> Record:
        """One METRIC record of everything, values as floats or ints, the
        registered components' metrics last."""
        points: list[str] = []
        values: list[float | int | str | bool | None] = []
        units: list[str] = []

        def put(name: str, value: float | int | str, unit: str = "") -> None:
            points.append(name)
            values.append(value)
            units.append(unit)

        elapsed_s = (ts_ns - self._last_at_ns) / 1e9 if self._last_at_ns else 0.0
        stored = self.writer.values_stored
        rate = (stored - self._last_stored) / elapsed_s if elapsed_s > 0 else 0.0
        self._last_stored, self._last_at_ns = stored, ts_ns

        for name, d in [("total", self.totals()), *sorted(self.devices.items())]:
            lat = list(d.latencies)
            put(f"{name}.polls", d.polls)
            put(f"{name}.readings", d.readings)
            put(f"{name}.failed_polls", d.failed_polls)
            put(f"{name}.requests", d.requests)
            put(f"{name}.errors", d.error_total)
            for kind in ErrorKind:
                if d.errors.get(kind.value):
                    put(f"{name}.errors.{kind.value}", d.errors[kind.value])
            put(
                f"{name}.latency_mean_ms",
                round(1000 * sum(lat) / len(lat), 3) if lat else 0.0,
                "ms",
            )
            put(f"{name}.latency_p99_ms", round(1000 * percentile(lat, 99), 3), "ms")
            put(f"{name}.overruns", d.overruns)
            put(f"{name}.comm_losses", d.comm_losses)
            if name != "total":
                put(f"{name}.state", d.state)
        put("store.bytes", self.store_bytes, "B")
        put("store.values_per_s", round(rate, 2), "1/s")
        put("store.records", self.writer.records_stored)
        put("store.values", stored)
        put("queue.depth", self.queue_depth)
        put("queue.backpressure", self.writer.backpressure)
        for name, value in self.registry.collect().items():
            points.append(name)
            values.append(value)
            units.append("")
        return Record(
            kind=RecordKind.METRIC,
            device=METRICS_SOURCE,
            ts_ns=ts_ns,
            points=points,
            values=list(values),
            units=units,
            qualities=[Quality.GOOD] * len(points),
        )
