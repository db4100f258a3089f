"""Survey uploads and checks on the platform (issue 13), ``make bench-uploads``.

    python -m bench.uploads_bench             # the full run (about 15 minutes)
    python -m bench.uploads_bench --quick     # tiny sizes: the smoke test's run
    python -m bench.uploads_bench --parts checks --db sqlite

1. **Uploads**: ``--clients`` (20) surveyors upload a file of each of
   ``--sizes`` (50 and 200 MB) at once over loopback to a real ``minegate
   platform serve``: by tus through the product's client (tuspy, 8 MiB
   chunks, as ``minegate survey upload``; each upload then made a survey,
   which hashes and stores the file), by the plain multipart path (``curl
   -F``, streamed), and, for the raw ceiling a user could pick instead,
   plain HTTP PUTs to nginx (``curl -T``). Throughput (MB/s, all clients
   together) and the service's peak RSS (``VmHWM`` of the serve process and
   its children, reset before each case): it must stay flat whatever the
   file size. Then one tus upload killed (SIGKILL) at half way and resumed
   by the same command: bytes sent again, and the SHA-256 the service
   computed equal to the file's.
2. **Checks**: the 20 M-point scan of ``bench.survey_bench`` uploaded once
   and checked; then ``--checks`` (100) re-checks of it (``POST
   /api/v1/surveys/{id}/recheck``: a new survey of the same stored files,
   its own job; the same file uploaded again would be recognised and not
   checked) queued at once, with 1, 2 and 4 ``minegate platform worker``
   processes on Dramatiq and Redis: checks per minute (first request to
   last check finished), the scaling ratio, CPU seconds per check.

Results: ``bench/results/uploads.json`` and ``uploads.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.gateway_procs import Children, cpu_seconds, descendants, reset_peak, status_kib
from bench.gateway_report import machine
from bench.uploads_parts import (
    MINE,
    ROOT,
    BenchError,
    CountingProxy,
    Databases,
    Platform,
    start_nginx,
    start_platform,
    start_workers,
    stop_workers,
)
from bench.uploads_report import markdown

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "_work"
MB = 1_000_000
HOWS = ("tus", "tus-curl", "multipart", "nginx-put")


def runqueue_wait_s(pids: list[int]) -> float:
    """Time these processes' threads were runnable but waiting for a CPU
    (``/proc/<pid>/task/*/schedstat``, second field): the machine's share
    of a slow round, not the engine's."""
    total = 0
    for pid in pids:
        for st in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(st.read_text().split()[1])
            except (OSError, ValueError, IndexError):
                pass  # a thread gone
    return total / 1e9


def peak_mib(pids: list[int]) -> float:
    return sum(status_kib(p, "VmHWM") for p in pids) / 1024.0


def rss_mib(pids: list[int]) -> float:
    return sum(status_kib(p, "VmRSS") for p in pids) / 1024.0


def data_file(work: Path, size_mb: float, tag: str = "") -> Path:
    """Random bytes behind a LAS signature (the service sniffs the type);
    a check of it would fail, none runs in the upload part."""
    path = work / f"upload_{size_mb:g}mb{tag}.las"
    if not path.exists() or path.stat().st_size != int(size_mb * MB):
        tmp = path.with_suffix(".part")
        left = int(size_mb * MB)
        with tmp.open("wb") as f:
            f.write(b"LASF")
            left -= 4
            while left > 0:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
        tmp.rename(path)
    return path


def replace_url(plat: Platform, url: str) -> Platform:
    from dataclasses import replace as dc_replace

    return dc_replace(plat, url=url)


def tus_curl(plat: Platform, path: Path) -> list[str]:
    """A tus upload by two curl commands: the creation, then one PATCH
    streaming the whole file (the service's tus path without a Python
    client's cost)."""
    import base64

    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("filename", "scan.las"), ("filetype", "application/octet-stream"),
                     ("mine", MINE))
    )  # fmt: skip
    auth = f"Authorization: Bearer {plat.token}"
    script = (
        'loc=$(curl -sS -D - -o /dev/null -X POST -H "$AUTH" -H "Tus-Resumable: 1.0.0" '
        '-H "Upload-Length: $SIZE" -H "Upload-Metadata: $META" "$URL/api/v1/tus/" '
        "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); "
        'case "$loc" in http*) ;; *) loc="$URL$loc";; esac; '
        'curl -sS -o /dev/null -w "%{http_code}" -X PATCH -T "$FILE" -H "$AUTH" '
        '-H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" '
        '-H "Content-Type: application/offset+octet-stream" "$loc"'
    )
    size = str(path.stat().st_size)
    return ["env", f"AUTH={auth}", f"SIZE={size}", f"META={meta}", f"URL={plat.url}",
            f"FILE={path}", "sh", "-c", script]  # fmt: skip


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.children = Children()
        self.dbs = Databases(args.db)

    def close(self) -> None:
        self.children.stop_all()
        self.dbs.close()

    def client_argv(self, plat: Platform, path: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "bench.uploads_client", "tus", "--server", plat.url,
                "--file", str(path), "--mine", MINE, *extra]  # fmt: skip

    def client_env(self, plat: Platform, home: Path) -> dict[str, str]:
        home.mkdir(parents=True, exist_ok=True)
        return {**plat.env, "HOME": str(home), "MINEGATE_TOKEN": plat.token}

    # ------------------------------------------------------------ uploads

    def measure(self, plat: Platform, start: Any, wait: Any) -> dict[str, Any]:
        """Start the clients (``start()`` returns when the bytes go), wait
        for them; wall time, CPU and peak RSS of the service."""
        pids = plat.pids()
        base_rss = rss_mib(pids)
        reset_ok = reset_peak(pids)
        cpu0 = cpu_seconds(pids)
        t0 = time.perf_counter()
        start()
        outs = wait()
        wall = time.perf_counter() - t0
        pids = plat.pids()
        return {
            "wall_s": wall,
            "service_cpu_s": cpu_seconds(pids) - cpu0,
            "service_rss_before_mib": base_rss,
            "service_peak_rss_mib": peak_mib(pids),
            "peak_reset": reset_ok,
            "clients": outs,
        }

    def tus_case(self, plat: Platform, path: Path, n: int) -> dict[str, Any]:
        procs = [
            self.children.start(
                f"client{i}", self.client_argv(plat, path, "--go", "--survey"),
                log=self.work / "clients.log", env=self.client_env(plat, self.work / f"c{i}"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            for i in range(n)
        ]  # fmt: skip
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != b"ready":
                raise BenchError("an upload client did not start (see clients.log)")

        def go() -> None:
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(b"go\n")
                p.stdin.flush()

        def wait() -> list[dict[str, Any]]:
            outs = []
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                p.wait(60)
                if p.returncode != 0 or not line:
                    raise BenchError("an upload client failed (see clients.log)")
                outs.append(json.loads(line))
                self.children.stop(p)
            return outs

        res = self.measure(plat, go, wait)
        upload_s = max(c["upload_s"] for c in res["clients"])
        res["upload_s"] = upload_s
        res["upload_mb_s"] = n * path.stat().st_size / MB / upload_s
        res["mb_s"] = n * path.stat().st_size / MB / res["wall_s"]
        res["surveys"] = len({c["survey"] for c in res["clients"]})
        del res["clients"]
        return res

    def curl_case(self, plat: Platform, path: Path, n: int, argv_of: Any) -> dict[str, Any]:
        procs: list[subprocess.Popen[bytes]] = []

        def start() -> None:
            for i in range(n):
                procs.append(
                    self.children.start(
                        f"curl{i}", argv_of(i), log=self.work / "curl.log", stdout=subprocess.PIPE
                    )
                )

        def wait() -> list[str]:
            codes = []
            for p in procs:
                out, _ = p.communicate(timeout=3600)
                codes.append(out.decode().strip())
                self.children.stop(p)
            return codes

        res = self.measure(plat, start, wait)
        bad = [c for c in res["clients"] if c not in ("200", "201", "204")]
        if bad:
            raise BenchError(f"curl uploads answered {bad[:3]} (see {self.work / 'curl.log'})")
        res["mb_s"] = res["upload_mb_s"] = n * path.stat().st_size / MB / res["wall_s"]
        del res["clients"]
        return res

    def clean(self, plat: Platform, nginx_root: Path | None) -> None:
        for sub in ("blobs", "incoming", "tus"):  # tus-curl leaves its uploads unused
            shutil.rmtree(plat.uploads / sub, ignore_errors=True)
        if nginx_root is not None:
            shutil.rmtree(nginx_root / "data" / "put", ignore_errors=True)
            (nginx_root / "data" / "put").mkdir(parents=True, exist_ok=True)

    def uploads(self) -> dict[str, Any]:
        a = self.args
        top = max(a.sizes)
        plat = start_platform(self.children, self.work / "up", self.dbs.new(self.work / "up"),
                              self.licence(), multipart_mb=top * 1.1 + 1)  # fmt: skip
        nginx = start_nginx(self.children, self.work / "nginx")
        nginx_root = self.work / "nginx" if nginx else None
        auth = f"Authorization: Bearer {plat.token}"
        cases: list[dict[str, Any]] = []
        for size in a.sizes:
            path = data_file(self.data_dir, size)
            for how in a.how:
                print(f"  {a.clients} x {size:g} MB by {how} ...", flush=True)
                if how == "tus":
                    r = self.tus_case(plat, path, a.clients)
                elif how == "multipart":
                    url = f"{plat.url}/api/v1/mines/{MINE}/surveys"
                    r = self.curl_case(plat, path, a.clients, lambda i, u=url, p=path: [
                        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", auth,
                        "-F", f"file=@{p};filename=scan{i}.las", u])  # fmt: skip
                elif how == "tus-curl":
                    r = self.curl_case(plat, path, a.clients, lambda i, p=path: tus_curl(plat, p))
                    r["note"] = "tus by curl: one PATCH of the whole file; no survey made"
                elif nginx is not None:
                    url = nginx[0]
                    r = self.curl_case(plat, path, a.clients, lambda i, u=url, p=path: [
                        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "-T", str(p), f"{u}/{i}.bin"])  # fmt: skip
                    r["note"] = "service idle: peak RSS is the service's, not nginx's"
                else:
                    continue
                r.update({"how": how, "size_mb": size, "clients": a.clients})
                print(f"    {r['upload_mb_s']:.0f} MB/s, service peak RSS "
                      f"{r['service_peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
                cases.append(r)
                self.clean(plat, nginx_root)
        resume = self.resume(plat, data_file(self.data_dir, a.resume_mb, "-resume"))
        self.clean(plat, nginx_root)
        return {"cases": cases, "resume": resume, "nginx": nginx is not None}

    def resume(self, plat: Platform, path: Path) -> dict[str, Any]:
        """A tus upload whose client is killed at half way, then the same
        command again: it resumes from the service's offset. The client
        talks through a counting relay: bytes on the wire, both sessions."""
        size = path.stat().st_size
        env = self.client_env(plat, self.work / "resume-home")
        print(f"  one {size / MB:g} MB tus upload killed at 50 % and resumed ...", flush=True)
        log = self.work / "resume.log"
        earlier = set((plat.uploads / "tus").glob("*/*.info"))  # only this upload's counts
        proxy = CountingProxy(int(plat.url.rsplit(":", 1)[1]))
        via = replace_url(plat, f"http://127.0.0.1:{proxy.port}")
        try:
            p = self.children.start("resume1", self.client_argv(via, path, "--chunk-mb", "1"),
                                    log=log, env=env, stdout=subprocess.PIPE)  # fmt: skip

            def server_offset() -> int:
                offs = []
                for i in set((plat.uploads / "tus").glob("*/*.info")) - earlier:
                    try:
                        offs.append(int(json.loads(i.read_text()).get("offset") or 0))
                    except (OSError, ValueError):
                        pass  # being written
                return max(offs, default=0)

            deadline = time.monotonic() + 600
            while server_offset() < size // 2:
                if p.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the upload to be cut ended early (see {log})")
                time.sleep(0.01)
            at_kill = server_offset()
            self.children.stop(p, sig=signal.SIGKILL, grace_s=5)
            time.sleep(1.0)  # the service sees the connection drop and keeps what it had
            first_wire = proxy.take()
            kept = server_offset()
            argv = self.client_argv(via, path, "--survey", "--chunk-mb", "8")
            p2 = self.children.start("resume2", argv, log=log, env=env, stdout=subprocess.PIPE)
            out, _ = p2.communicate(timeout=1800)
            self.children.stop(p2)
            second_wire = proxy.take()
        finally:
            proxy.close()
        if p2.returncode != 0:
            raise BenchError(f"the resumed upload failed (see {log})")
        second = json.loads(out.decode().strip().splitlines()[-1])
        survey = plat.api("GET", f"/api/v1/surveys/{second['survey']}")
        mine_sha = sha256(path)
        return {
            "size_bytes": size,
            "cut_at_bytes": at_kill,
            "kept_by_service_bytes": kept,
            "first_session_wire_bytes": first_wire,
            "second_session_wire_bytes": second_wire,
            "resent_bytes": max(0, first_wire + second_wire - size),
            "second_session_s": second["seconds"],
            "sha256_file": mine_sha,
            "sha256_service": survey["files"][0]["sha256"],
            "sha256_equal": survey["files"][0]["sha256"] == mine_sha,
        }

    # ------------------------------------------------------------- checks

    def licence(self) -> Path:
        return self.scan()[1]

    def scan(self) -> tuple[Path, Path]:
        """The survey benchmark's scan of ``--points`` and its licence
        (generated once, cached in bench/_work/ like bench.survey_bench)."""
        from bench.survey_bench import _licence_file, scan_chunks, with_corners, write_las_file

        n = self.args.points
        las, lic = WORK / f"scan_{n}.las", WORK / f"bench_licence_{n}.toml"
        if las.exists() and lic.exists():
            return las, lic
        WORK.mkdir(parents=True, exist_ok=True)
        print(f"generating a {n:,}-point scan (cached) ...", flush=True)
        gen = scan_chunks(n, seed=1)
        first = next(gen)
        licence = with_corners(first[0])
        if not lic.exists():
            _licence_file(replace(licence, seams=()), lic)
        chunks = (c for c in [first[1]] + [c for _, c in gen])
        write_las_file(las, licence, chunks, compress=False)
        return las, lic

    def checks(self) -> dict[str, Any]:
        a = self.args
        las, lic = self.scan()
        home = self.work / "checks"
        plat = start_platform(self.children, home, self.dbs.new(home), lic, multipart_mb=10)
        print(f"  uploading the {las.stat().st_size / MB:,.0f} MB scan and checking it once ...",
              flush=True)  # fmt: skip
        p = self.children.start("scan-upload", self.client_argv(plat, las, "--survey"),
                                log=home / "client.log", env=self.client_env(plat, home / "c"),
                                stdout=subprocess.PIPE)  # fmt: skip
        out, _ = p.communicate(timeout=1800)
        self.children.stop(p)
        if p.returncode != 0:
            raise BenchError(f"the scan's upload failed (see {home / 'client.log'})")
        original = json.loads(out.decode().strip().splitlines()[-1])["survey"]
        start_workers(self.children, plat, 1)
        first = self.wait_done(plat, [original], 1800)[0]
        if first["state"] != "done":
            raise BenchError(f"the scan's check failed: {first['message']}")
        stop_workers(self.children, plat)
        rounds = [self.round(plat, original, w, a.checks) for w in a.workers]
        return {
            "points": a.points,
            "file_mb": las.stat().st_size / MB,
            "verdict": first["verdict"],
            "incidents": first["incidents"],
            "checks": a.checks,
            "db": a.db,
            "rounds": rounds,
        }

    def wait_done(self, plat: Platform, ids: list[int], timeout_s: float) -> list[dict[str, Any]]:
        """Wait for the surveys to end, watching the database with one light
        query (listing every survey through the API twice a second cost the
        service and the database more CPU than the checks' own jobs); then
        their results through the API."""
        from sqlalchemy import text

        from supervision.db import make_engine

        want = set(ids)
        deadline = time.monotonic() + timeout_s
        engine = make_engine(plat.db_url)
        query = text(
            "SELECT count(*) FROM survey WHERE id >= :lo AND id <= :hi "
            "AND state IN ('done', 'failed')"
        )
        try:
            while True:
                with engine.connect() as conn:
                    ended = conn.execute(query, {"lo": min(ids), "hi": max(ids)}).scalar_one()
                if ended >= len(want):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"checks not done after {timeout_s:g} s")
                time.sleep(0.25)
        finally:
            engine.dispose()
        while True:
            listed = plat.api("GET", "/api/v1/surveys", params={"mine": MINE})
            got = {s["id"]: s for s in listed if s["id"] in want}
            if len(got) == len(want) and all(
                s["state"] in ("done", "failed") for s in got.values()
            ):
                return [got[i] for i in ids]
            if time.monotonic() > deadline:
                raise BenchError(f"checks not done after {timeout_s:g} s")
            time.sleep(0.5)

    def round(self, plat: Platform, original: int, workers: int, n: int) -> dict[str, Any]:
        print(f"  {n} checks with {workers} worker(s) ...", flush=True)
        t_start = time.perf_counter()
        procs = start_workers(self.children, plat, workers)
        start_s = time.perf_counter() - t_start
        wpids = [q for w in procs for q in descendants(w.pid)]
        reset_peak(wpids)
        others = plat.pids() + self.dbs.pids()
        cpu_w0, cpu_o0 = cpu_seconds(wpids), cpu_seconds(others)
        wait_w0 = runqueue_wait_s(wpids)
        t0_ns = time.time_ns()
        ids = [plat.api("POST", f"/api/v1/surveys/{original}/recheck", json={})["id"]
               for _ in range(n)]  # fmt: skip
        queued_s = (time.time_ns() - t0_ns) / 1e9
        done = self.wait_done(plat, ids, 3600 + 60 * n)
        elapsed = (max(s["finished_ns"] for s in done) - t0_ns) / 1e9
        cpu_w = cpu_seconds(wpids) - cpu_w0
        wait_w = runqueue_wait_s(wpids) - wait_w0
        res = {
            "workers": workers,
            "checks": n,
            "failed": sum(s["state"] != "done" for s in done),
            "worker_start_s": start_s,
            "queue_s": queued_s,
            "elapsed_s": elapsed,
            "checks_per_min": n / elapsed * 60,
            "worker_cpu_s_per_check": cpu_w / n,
            "worker_cores_used": cpu_w / elapsed,
            "worker_runqueue_wait_s_per_check": wait_w / n,
            "service_and_db_cpu_s": cpu_seconds(others) - cpu_o0,
            "worker_peak_rss_mib": max((status_kib(q, "VmHWM") / 1024 for q in wpids), default=0),
            "loadavg_after": list(os.getloadavg()),
        }
        print(f"    {res['checks_per_min']:.1f} checks/min, {res['worker_cpu_s_per_check']:.2f} "
              f"CPU s per check, {res['worker_cores_used']:.2f} cores", flush=True)  # fmt: skip
        stop_workers(self.children, plat)
        return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.uploads_bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    ap.add_argument("--parts", default="uploads,checks", help="uploads, checks or both")
    ap.add_argument("--clients", type=int, help="concurrent uploads (20)")
    ap.add_argument("--sizes", type=float, nargs="+", help="file sizes, MB (50 200)")
    ap.add_argument(
        "--how",
        nargs="+",
        default=list(HOWS),
        choices=HOWS,
        help="upload paths (all)",
    )
    ap.add_argument("--resume-mb", type=float, help="the cut-and-resumed upload, MB (200)")
    ap.add_argument("--points", type=int, help="the checked scan's points (20,000,000)")
    ap.add_argument("--checks", type=int, help="checks queued per round (100)")
    ap.add_argument("--workers", type=int, nargs="+", help="worker processes per round (1 2 4)")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), help="postgresql (sqlite --quick)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, help="scratch directory (a temporary one)")
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {"clients": (2 if q else 20), "sizes": ([2, 8] if q else [50, 200]),
                "resume_mb": (8 if q else 200), "points": (200_000 if q else 20_000_000),
                "checks": (3 if q else 100), "workers": ([1, 2] if q else [1, 2, 4]),
                "db": ("sqlite" if q else "postgresql")}  # fmt: skip
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    parts = {p.strip() for p in args.parts.split(",")}
    load_before = os.getloadavg()
    tmp = None
    if args.work is None:
        tmp = tempfile.mkdtemp(prefix="uploads-bench-")
        args.work = Path(tmp)
    bench = Bench(args, args.work)
    bench.data_dir = WORK if not q else args.work  # type: ignore[attr-defined]
    WORK.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.uploads_bench " + " ".join(argv or sys.argv[1:]),
        "quick": q,
    }
    rc = 0
    try:
        if "uploads" in parts:
            print("uploads:", flush=True)
            doc["uploads"] = bench.uploads()
        if "checks" in parts:
            print("checks:", flush=True)
            doc["checks"] = bench.checks()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        doc["error"] = str(exc)
        rc = 1
    except KeyboardInterrupt:
        rc = 130
    finally:
        bench.close()
        if tmp is not None and rc == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"logs kept in {tmp}", file=sys.stderr)
    doc["machine"] = machine(load_before)
    old = args.results / "uploads.json"
    if parts != {"uploads", "checks"} and old.exists() and not q:
        prev = json.loads(old.read_text())
        for k in ("uploads", "checks"):
            if k not in doc and k in prev:
                doc[k] = prev[k]
                doc.setdefault("kept_from", {})[k] = prev.get("created_utc")
    args.results.mkdir(parents=True, exist_ok=True)
    old.write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    (args.results / "uploads.md").write_text(md)
    print(md)
    return rc


if __name__ == "__main__":
    sys.exit(main())
