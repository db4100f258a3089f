"""Webhooks: alert events POSTed as JSON, signed.

Headers: ``X-Minegate-Timestamp`` (unix seconds), ``X-Minegate-Signature:
sha256=<hex>`` = HMAC-SHA256 with the receiver's secret over
``<timestamp>.<body>`` (a receiver recomputes it and rejects old
timestamps, so a captured request cannot be replayed later),
``X-Minegate-Delivery`` (the delivery id, the same on every retry: a
receiver deduplicates by it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request

from supervision.config import WebhookReceiver
from supervision.notify.outcome import Outcome

USER_AGENT = "minegate-platform/0.1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def http_permanent(status: int) -> bool:
    """Any 4xx but 408 and 429 will not get better by repeating it."""
    return 400 <= status < 500 and status not in (408, 429)


def post(receiver: WebhookReceiver, delivery_id: int, body: bytes, now_s: int) -> Outcome:
    ts = str(now_s)
    req = urllib.request.Request(
        receiver.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Minegate-Timestamp": ts,
            "X-Minegate-Signature": signature(receiver.secret, ts, body),
            "X-Minegate-Delivery": str(delivery_id),
        },
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=receiver.timeout_s) as resp:
            resp.read(65536)
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        return Outcome.failed(
            f"HTTP {exc.code} {exc.reason}",
            t0,
            status=int(exc.code),
            permanent=http_permanent(exc.code),
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Outcome.failed(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", t0)
    if 200 <= status < 300:
        return Outcome.sent(t0, status)
    return Outcome.failed(f"HTTP {status}", t0, status=status, permanent=http_permanent(status))
