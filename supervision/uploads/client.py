"""``minegate survey upload FILE... --mine ID --server URL``: the
surveyor's side. Each file goes up by tus (the ``tuspy`` client) with a
progress bar; a broken connection is retried from the offset the server
has, and an upload cut short (the command stopped) resumes from there the
next time (the upload URLs are kept in ``~/.cache/minegate/tus-uploads.json``).
Then the files become one survey, the command waits for the check and
prints the verdict, the incidents and the report's URL.

The token comes from ``MINEGATE_TOKEN``, else from the config file
(``~/.config/minegate/client.toml``: ``token = "..."``, optionally
``server = "https://..."``). Exit codes as ``survey check``: 0 compliant
(or within survey uncertainty), 3 violations, 2 bad input (a refused file,
a survey the check refused, no token, not allowed), 1 the server
unreachable after the retries.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_VIOLATIONS = 0, 1, 2, 3
DEFAULT_CONFIG = Path("~/.config/minegate/client.toml")
URL_STORE = Path("~/.cache/minegate/tus-uploads.json")
CHUNK = 8 << 20


class UploadError(Exception):
    """Ends the command with ``code`` and the message on stderr."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="the survey's files (scans, points, a description, or a zip)",
    )
    p.add_argument("--mine", required=True, help="the mine's code")
    p.add_argument("--server", help="the platform's URL (or server in the config file)")
    p.add_argument("--description", default="", help="a note kept with the survey")
    p.add_argument(
        "--open-pit",
        action="store_true",
        help="an open pit's survey: its dense cloud (LAS/LAZ) or textured mesh (OBJ) is "
        "rasterised and checked as a pit (a DSM raster is, without this flag)",
    )
    p.add_argument("--config", type=Path, help=f"client config (default {DEFAULT_CONFIG})")
    p.add_argument("--chunk-mb", type=float, default=CHUNK / 2**20, help="tus chunk size, MB")
    p.add_argument("--retries", type=int, default=10, help="retries of a broken connection")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the check")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="longest wait for the check, s")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _settings(args: argparse.Namespace) -> tuple[str, str]:
    cfg_path = (args.config or DEFAULT_CONFIG).expanduser()
    cfg: dict[str, Any] = {}
    if args.config is not None or cfg_path.exists():
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UploadError(f"{cfg_path}: cannot read the client config: {exc}") from None
    token = os.environ.get("MINEGATE_TOKEN") or cfg.get("token")
    if not isinstance(token, str) or not token:
        raise UploadError(
            f'no token: set MINEGATE_TOKEN or token = "..." in {cfg_path} '
            "(ask the platform's admin for one: minegate platform admin issue-token)"
        )
    server = args.server or cfg.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise UploadError(f'give --server URL (or server = "https://..." in {cfg_path})')
    return token, server.rstrip("/")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UploadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


def _request(method: str, url: str, token: str, timeout: float = 60, **kw: Any) -> Any:
    import requests

    try:
        r = requests.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, timeout=(10, timeout), **kw
        )
    except requests.RequestException as exc:
        raise UploadError(f"{url}: {exc}", EXIT_FAILURE) from None
    if r.status_code in (401, 403):
        raise UploadError(
            f"{url}: {r.status_code}: the token is wrong, expired or not allowed this"
        )
    if r.status_code >= 400:
        raise UploadError(f"{url}: {r.status_code}: {_detail(r)}")
    return r.json()


def _detail(r: Any) -> str:
    try:
        return str(r.json().get("detail"))
    except ValueError:
        return r.text[:300]


def _run(args: argparse.Namespace) -> int:
    token, server = _settings(args)
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise UploadError(f"{f}: no such file")
    ids = [
        upload_file(server, token, f, args.mine, chunk=int(args.chunk_mb * 2**20),
                    retries=args.retries, quiet=args.quiet)
        for f in files
    ]  # fmt: skip
    created = _request(
        "POST",
        f"{server}/api/v1/mines/{args.mine}/surveys/tus",
        token,
        json={
            "uploads": ids,
            "description": args.description,
            **({"kind": "open_pit"} if args.open_pit else {}),
        },
        timeout=3600,  # the server hashes every file (about 5 s a GB) before it answers
    )
    url = f"{server}{created['url']}"
    if created["duplicate"]:
        print(f"survey {created['id']}: these files were uploaded before; not checked again")
    else:
        print(f"survey {created['id']} uploaded; checking")
    if args.no_wait:
        print(url)
        return EXIT_OK
    return wait_and_report(server, token, url, args.timeout)


def wait_and_report(server: str, token: str, url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        s = _request("GET", url, token)
        stage = f"{s['state']} {s['stage']}".strip()
        if stage != seen and s["state"] not in ("done", "failed"):
            print(f"  {stage}", file=sys.stderr)
            seen = stage
        if s["state"] in ("done", "failed"):
            break
        if time.monotonic() > deadline:
            raise UploadError(f"no result after {timeout:g} s; see {url}", EXIT_FAILURE)
        time.sleep(1.0)
    if s["state"] == "failed":
        print(f"CHECK FAILED: {s['message']}")
        return EXIT_BAD_INPUT
    findings = _request("GET", f"{server}{s['findings_url']}", token)
    print(f"{s['verdict'].upper()}: {s['message']}")
    for inc in findings.get("incidents", [])[:20]:
        print(
            f"  {inc.get('id')} {inc.get('type')}: {inc.get('max_exceedance_m')} m beyond, "
            f"{inc.get('volume_m3')} m³"
        )
    print(f"report: {server}{s['report_url']}")
    return EXIT_VIOLATIONS if s["incidents"] else EXIT_OK


def upload_file(
    server: str,
    token: str,
    path: Path,
    mine: str,
    *,
    chunk: int,
    retries: int,
    quiet: bool,
    on_chunk: Callable[[int], None] | None = None,
) -> str:
    """Upload ``path`` by tus (resuming an earlier, unfinished upload of
    the same file); its upload id."""
    from tusclient.client import TusClient
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed
    from tusclient.storage.filestorage import FileStorage

    store_path = URL_STORE.expanduser()
    store_path.parent.mkdir(parents=True, exist_ok=True)
    storage = FileStorage(str(store_path))
    client = TusClient(f"{server}/api/v1/tus/", headers={"Authorization": f"Bearer {token}"})

    def make() -> Any:
        return client.uploader(
            file_path=str(path), chunk_size=chunk, metadata={"filename": path.name, "filetype": "application/octet-stream", "mine": mine},
            store_url=True, url_storage=storage,
        )  # fmt: skip

    tries = 0
    try:
        up = make()
    except TusCommunicationError as exc:
        if exc.status_code in (404, 410):  # a stored upload the server no longer has
            storage.remove_item(_fingerprint(path))
            up = make()
        else:
            raise _tus_error(exc, path) from None
    total = up.get_file_size()
    with _bar(path.name, total, quiet) as advance:
        advance(up.offset)
        while up.offset < total:
            try:
                up.upload_chunk()
                tries = 0
            except (TusCommunicationError, TusUploadFailed, OSError) as exc:
                status = getattr(exc, "status_code", None)
                if status is not None and 400 <= status < 500:
                    raise _tus_error(exc, path) from None
                tries += 1
                if tries > retries:
                    raise UploadError(
                        f"{path}: the connection failed {tries} times ({exc}); run the same "
                        "command again to resume",
                        EXIT_FAILURE,
                    ) from None
                time.sleep(min(30.0, 0.5 * 2**tries))
                try:
                    up.offset = up.get_offset()
                except (TusCommunicationError, OSError):
                    continue
            advance(up.offset)
            if on_chunk is not None:
                on_chunk(up.offset)
    storage.remove_item(_fingerprint(path))
    return str(up.url).rstrip("/").rsplit("/", 1)[-1]


def _fingerprint(path: Path) -> str:
    from tusclient.fingerprint.fingerprint import Fingerprint

    with path.open("rb") as f:
        return str(Fingerprint().get_fingerprint(f))


def _tus_error(exc: Any, path: Path) -> UploadError:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "response_content", b"") or b""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        import json

        text = str(json.loads(text).get("detail", text))
    except (ValueError, AttributeError):
        pass
    if status in (401, 403):
        return UploadError(f"{path}: {status}: the token is wrong, expired or not allowed this")
    return UploadError(f"{path}: refused ({status}): {text or exc}")


class _bar:
    def __init__(self, name: str, total: int, quiet: bool) -> None:
        self.name, self.total, self.quiet = name, total, quiet
        self.progress: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self.quiet:
            return lambda _done: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=Console(file=sys.stderr),
        )  # fmt: skip
        self.progress.start()
        task = self.progress.add_task(f"upload {self.name}", total=self.total)
        return lambda done: self.progress.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
