"""Child processes of the gateway benchmark and what they cost, from /proc.

Every child is started in its own session (process group), so stopping it
also stops whatever it spawned; :class:`Children` remembers them all and
stops them in reverse order, on success, error or Ctrl-C alike.

CPU time is utime + stime of a process and all its descendants
(``/proc/<pid>/stat``); peak memory is ``VmHWM`` (``/proc/<pid>/status``),
reset at the start of a measuring window by writing ``5`` to
``/proc/<pid>/clear_refs`` where the kernel allows it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (their threads included), seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    return cpu_seconds([p for r in roots for p in descendants(r)])


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmHWM, VmRSS), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pids: Sequence[int]) -> bool:
    """Reset VmHWM to the current RSS; False when the kernel refused."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def peak_rss_mib(roots: Sequence[int]) -> float:
    """Sum of VmHWM over the process trees (an upper bound of the joint peak)."""
    return sum(status_kib(p, "VmHWM") for r in roots for p in descendants(r)) / 1024.0


class Children:
    """Processes started by the benchmark; ``stop_all`` ends every one."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=stdin,
                stdout=fh if stdout is None else stdout,
                stderr=fh,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop(
        self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = 10.0
    ) -> int | None:
        """Signal the process group, wait ``grace_s``, then SIGKILL the group."""
        self.procs = [(n, p) for n, p in self.procs if p is not proc]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        # whatever the process left behind in its group goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return proc.returncode

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.procs)):
            self.stop(proc, grace_s=5.0)


def wait_for(pred: object, timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll ``pred()`` until true or ``timeout_s`` passes (bounded loop)."""
    assert callable(pred)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return bool(pred())
