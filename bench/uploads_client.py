"""One surveyor's upload, as a child process of ``bench.uploads_bench``.

    python -m bench.uploads_client tus --server URL --file F --mine M [--survey] [--go]

Uses the product's own client path (``supervision.uploads.client``: tuspy,
the same chunks and retries as ``minegate survey upload``). The token comes
from ``MINEGATE_TOKEN``; the resumable upload's URL is kept under
``$HOME/.cache`` (one HOME per client: a killed client resumes from it).
With ``--go`` it waits for a line on stdin before the first byte, so that
start-up is not timed. Prints one JSON line: seconds, the upload id and the survey made of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def tus(args: argparse.Namespace, token: str) -> dict[str, Any]:
    from supervision.uploads import client

    path = Path(args.file)
    t0 = time.perf_counter()
    uid = client.upload_file(
        args.server, token, path, args.mine, chunk=int(args.chunk_mb * 2**20),
        retries=3, quiet=True,
    )  # fmt: skip
    t_upload = time.perf_counter() - t0
    out: dict[str, Any] = {"uid": uid, "upload_s": t_upload}
    if args.survey:
        created = client._request(
            "POST", f"{args.server}/api/v1/mines/{args.mine}/surveys/tus", token,
            json={"uploads": [uid]}, timeout=3600,
        )  # fmt: skip
        out["survey"] = created["id"]
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.uploads_client")
    ap.add_argument("how", choices=("tus",))
    ap.add_argument("--server", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--mine", required=True)
    ap.add_argument("--chunk-mb", type=float, default=8.0)
    ap.add_argument("--survey", action="store_true", help="make a survey of the upload")
    ap.add_argument("--go", action="store_true", help="wait for a line on stdin first")
    args = ap.parse_args(argv)
    token = os.environ["MINEGATE_TOKEN"]
    # imported before the start line: not timed
    import tusclient.client  # noqa: F401

    import supervision.uploads.client  # noqa: F401

    print("ready", flush=True)
    if args.go:
        sys.stdin.readline()
    out = tus(args, token)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
