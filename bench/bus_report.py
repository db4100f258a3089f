"""Tables of the bus benchmark (``bench.bus_bench``): stdout and bus.md."""

from __future__ import annotations

from typing import Any

HEAD = [
    "line",
    "devices",
    "turnaround ms",
    "transactions",
    "utilisation",
    "of the achievable",
    "protocol limit",
    "estimate error",
    "load asked (check-config)",
    "gateway gap beyond the silence, ms",
    "early requests",
]

GAPS = [
    ("silence", "3.5-character silences"),
    ("turnaround", "device turnaround"),
    ("device_extra", "simulated device slower than its turnaround"),
    ("gateway", "gateway, beyond the silence it keeps"),
    ("link_lag", "simulator's delivery lag"),
    ("other", "unanswered requests"),
]


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f} %"


def _signed_pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f} %"


def rows(doc: dict[str, Any]) -> list[list[str]]:
    out = []
    for c in doc["cases"]:
        gap = c["gateway_gap_ms_mean"]
        out.append(
            [
                c["line"],
                str(c["devices"]),
                f"{c['turnaround_ms']:g}",
                str(c["transactions"]),
                _pct(c["utilisation"]),
                _pct(c["achievable_share"]),
                _pct(c["protocol_limit_utilisation"]),
                _signed_pct(c["estimate_error"]),
                f"{c['estimated_load']:.0%}",
                "-" if gap is None else f"{gap:.2f}",
                str(c["early_requests"]),
            ]
        )
    return out


def table(doc: dict[str, Any]) -> str:
    body = rows(doc)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEAD)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEAD, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in body),
    ]


def verdicts(doc: dict[str, Any]) -> list[str]:
    targets = doc["settings"]["targets"]
    out = []
    for c in doc["cases"]:
        util_ok = c["utilisation"] >= targets["utilisation"]
        err = c["estimate_error"]
        est_ok = err is not None and abs(err) <= targets["estimate_error"]
        line = (
            f"- {c['line']}, {c['devices']} device(s), {c['turnaround_ms']:g} ms turnaround: "
            f"utilisation {_pct(c['utilisation'])} ({'pass' if util_ok else 'FAIL'} against "
            f"{_pct(targets['utilisation'], 0)}); "
        )
        if c["turnaround_ms"] == _typical_turnaround(doc):
            line += (
                f"estimate {_signed_pct(err)} ({'pass' if est_ok else 'FAIL'} within "
                f"±{_pct(targets['estimate_error'], 0)})"
            )
        else:
            line += "estimate not compared (it assumes the typical device's turnaround)"
        out.append(line)
    return out


def _typical_turnaround(doc: dict[str, Any]) -> float:
    return float(doc["settings"]["turnaround_ms"])


def markdown(doc: dict[str, Any]) -> str:
    m, v, s = doc["machine"], doc["versions"], doc["settings"]
    lines = [
        "# RS-485 bus at wire speed",
        "",
        f"Run {doc['run_at']} ({doc['seconds']} s): `python -m bench.bus_bench`, "
        f"{s['duration_s']:g} s windows after {s['warmup_s']:g} s of warm-up; devices answer "
        f"after a {s['turnaround_ms']:g} ms turnaround (the estimate's typical device; the "
        "rows with 0 ms: devices that answer at once, the gateway against the protocol "
        f"alone); the gateway's poll interval asks about {s['overask']:g} times what the "
        "line carries.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average {m['loadavg_before'][0]} before, {m['loadavg_after'][0]} after.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        *_md_table(HEAD, rows(doc)),
        "",
        "- **utilisation**: wire time of the frames (both directions) / elapsed time.",
        "- **of the achievable**: the least time the protocol allows for the transactions "
        "carried (wire + two 3.5-character silences + the turnaround) / the time they took.",
        "- **protocol limit**: the utilisation a master with no overhead at all would reach "
        "with these frames and this turnaround.",
        "- **estimate error**: `gateway/busload.py`'s time for the transactions carried "
        "against the time they took (positive: the estimate is pessimistic).",
        "- **load asked**: check-config's load figure for the bench's poll interval (what "
        "the gateway was asked to do; a sum of the estimated transaction times, so its "
        "error is the estimate error for the same mix of requests).",
        "",
        "Targets:",
        "",
        *verdicts(doc),
        "",
        "## Where the time between frames went",
        "",
        "Share of the measured time (the rest is wire time).",
        "",
    ]
    head = ["line", "devices", "turnaround ms", *(label for _, label in GAPS)]
    body = [
        [
            c["line"],
            str(c["devices"]),
            f"{c['turnaround_ms']:g}",
            *(_pct(c["gaps_share"].get(k)) for k, _ in GAPS),
        ]
        for c in doc["cases"]
    ]
    lines += _md_table(head, body)
    lines += [
        "",
        "Largest delivery lag of the simulated line (a frame handed to the receiver "
        "after its last character's time): "
        + ", ".join(
            f"{c['line']}/{c['devices']}/{c['turnaround_ms']:g}: {c['link_max_lag_ms']:.1f} ms"
            for c in doc["cases"]
        )
        + ".",
        "",
    ]
    return "\n".join(lines)
