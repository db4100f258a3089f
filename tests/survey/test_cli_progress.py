"""Progress output: periodic lines off a terminal, silence when disabled."""

from __future__ import annotations

import io

from survey.progress import LineProgress, null_progress, open_progress


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lines_are_throttled_and_the_end_is_always_shown() -> None:
    out, clock = io.StringIO(), _Clock()
    p = LineProgress(out, interval_s=5.0, clock=clock)
    for i in range(1, 101):  # 100 updates over 20 s
        clock.t = i * 0.2
        p("read scan.las", i * 1000, 100_000)
    p("read scan.las", 100_000, 100_000)
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 6  # one per 5 s, not one per update
    assert lines[-1] == "read scan.las: 100,000 / 100,000 points (100%)"
    p("read scan.las", 100_000, 100_000)  # a finished stage stays quiet
    assert len(out.getvalue().splitlines()) == len(lines)


def test_short_stage_prints_only_its_end_and_unknown_totals_count() -> None:
    out, clock = io.StringIO(), _Clock()
    p = LineProgress(out, interval_s=5.0, clock=clock)
    p("classify", 10, 20)
    p("classify", 20, 20)
    clock.t = 6.0
    p("stream", 5_000_000, None)
    clock.t = 12.0
    p("stream", 10_000_000, None)
    assert out.getvalue().splitlines() == [
        "classify: 20 / 20 points (100%)",
        "stream: 10,000,000 points",
    ]


def test_non_tty_stream_gets_line_progress_and_disabled_gets_none() -> None:
    buf = io.StringIO()
    with open_progress(buf) as p:
        assert isinstance(p, LineProgress)
    with open_progress(buf, enabled=False) as q:
        assert q is null_progress
        q("x", 1, 2)
    assert buf.getvalue() == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar() -> None:
    from survey.progress import RichProgress

    out = _Tty()
    with open_progress(out) as p:
        assert isinstance(p, RichProgress)
        p("read scan.las", 500, 1000)
        p("read scan.las", 1000, 1000)
    text = out.getvalue()
    assert "read scan.las" in text and "1000/1000" in text
