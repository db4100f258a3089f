"""The counters a Modbus hub keeps for the gateway's self-metrics
(:class:`HubMetrics`), with the latency histogram buckets."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.errors import ErrorKind

__all__ = ["LATENCY_BUCKETS_S", "HubMetrics"]

# Upper bounds (seconds) of the latency histogram buckets; the last bucket
# counts everything slower.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class HubMetrics:
    """Counters a hub keeps for the gateway's self-metrics.

    ``requests``: read/write calls; ``transactions``: frames sent (retries
    included); ``errors``: failed attempts by kind (including calls refused
    at once while the link is backing off); ``failures``: calls that
    raised; ``connect_failures``: failed (re)connects; latencies are per
    successful transaction, in seconds; ``latency_buckets[i]`` counts
    latencies ``<= LATENCY_BUCKETS_S[i]`` (last: slower than all).
    """

    requests: int = 0
    transactions: int = 0
    ok: int = 0
    failures: int = 0
    retries: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    unsolicited: int = 0  # receptions while no request waited (late replies, noise)
    errors: dict[ErrorKind, int] = field(default_factory=lambda: dict.fromkeys(ErrorKind, 0))
    last_latency_s: float = 0.0
    latency_sum_s: float = 0.0
    latency_count: int = 0
    latency_max_s: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))

    def observe(self, latency_s: float) -> None:
        self.ok += 1
        self.last_latency_s = latency_s
        self.latency_sum_s += latency_s
        self.latency_count += 1
        if latency_s > self.latency_max_s:
            self.latency_max_s = latency_s
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if latency_s <= bound:
                self.latency_buckets[i] += 1
                return
        self.latency_buckets[-1] += 1

    @property
    def latency_mean_s(self) -> float:
        return self.latency_sum_s / self.latency_count if self.latency_count else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Flat ``{name: number}`` view, e.g. for a metrics record."""
        out: dict[str, float | int] = {
            "requests": self.requests,
            "transactions": self.transactions,
            "ok": self.ok,
            "failures": self.failures,
            "retries": self.retries,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "unsolicited": self.unsolicited,
            "last_latency_s": self.last_latency_s,
            "latency_mean_s": self.latency_mean_s,
            "latency_max_s": self.latency_max_s,
        }
        out.update({f"errors_{kind}": n for kind, n in self.errors.items()})
        return out
