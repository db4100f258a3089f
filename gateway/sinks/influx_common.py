"""What the InfluxDB v1 and v2 sinks share: :class:`InfluxSink` (writing
line protocol, marking the link down on a transport failure), HTTP status ->
error mapping and finding the malformed records of a rejected batch.

InfluxDB answers a batch with a bad line with 400 (1.x: ``partial write``,
the good points *are* written; 2.x: the same or the whole batch refused). The
body does not reliably say which lines were bad, so the batch is bisected:
halves that the server accepts are done (re-writing a point InfluxDB already
stored is idempotent: same series, same timestamp, same values), halves that
fail are split again until single records remain; those are the rejects.
"""

from __future__ import annotations

import json
import re
import ssl
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from gateway.model import Record
from gateway.sinks.base import (
    AuthError,
    NotFound,
    Rejected,
    Sink,
    SinkError,
    TlsError,
    WriteResult,
)
from gateway.sinks.lineproto import LineEncoder


class Malformed(SinkError):
    """HTTP 400/413/422: the server refused the payload itself."""

    retryable = False


def server_message(body: bytes | str | None) -> str:
    """The error text from an InfluxDB / VictoriaMetrics error body."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(obj, dict):
        for key in ("error", "message"):
            if isinstance(obj.get(key), str):
                return str(obj[key])[:2000]
    return text[:2000]


#: words of a 400 answer that blame the data, not the request or the config
_DATA_FAULTS = re.compile(
    r"partial write|conflict|unable to parse|cannot parse|invalid (field|tag|number|boolean|"
    r"timestamp|measurement)|beyond retention|max-values-per-tag|too large|bad timestamp",
    re.IGNORECASE,
)


def error_for_status(status: int, body: bytes | str | None, target: str) -> SinkError:
    """The one mapping from an HTTP error status to the sink error hierarchy.

    A 400 counts as malformed data (rejects, found by bisection) only when
    the server's words blame the data; any other 400 is a request or
    configuration fault and keeps every record in the outbox (setting aside
    a whole outbox because of a wrong setting would lose it to the uplink).
    """
    text = server_message(body)
    msg = f"{target}: HTTP {status}: {text or '(no body)'}"
    if status == 413 or (status in (400, 422) and _DATA_FAULTS.search(text)):
        return Malformed(msg, status=status)
    if status in (400, 422):
        return SinkError(msg, status=status, retryable=False)
    if status in (401, 403):
        return AuthError(msg, status=status)
    if status == 404:
        return NotFound(msg, status=status)
    if status == 429 or status >= 500 or status == 408:
        return SinkError(msg, status=status, retryable=True)
    return SinkError(msg, status=status, retryable=False)


def redact_url(url: str) -> str:
    """The URL without user:password (for logs and status)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def ssl_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_error(exc: BaseException, target: str) -> TlsError:
    return TlsError(f"{target}: TLS failure: {exc}")


Post = Callable[[bytes], Awaitable[None]]

#: failures below HTTP: refused, reset, timed out, TLS (``ssl.SSLError`` and
#: ``aiohttp.ClientSSLError`` are ``OSError``\ s)
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


class InfluxSink(Sink):
    """Base of the InfluxDB sinks: a batch goes out as line protocol, one
    HTTP request per :meth:`_post`, with malformed records isolated by
    :func:`write_isolating`. A subclass calls :meth:`_link_failed` on any of
    :data:`TRANSPORT_ERRORS`, so the runner reconnects."""

    def __init__(self, site: str, gateway: str) -> None:
        self.encoder = LineEncoder(site, gateway)
        self.connected = False

    async def write(self, batch: list[Record]) -> WriteResult:
        return await write_isolating(self._post, self.encoder, batch)

    @abstractmethod
    async def _post(self, body: bytes) -> None:
        """Send one line-protocol payload; raise :class:`Malformed` on 400."""

    def _link_failed(self, exc: BaseException) -> SinkError:
        """Mark the sink disconnected; the error to raise for ``exc``."""
        self.connected = False
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            return tls_error(exc, self.describe())
        return SinkError(f"{self.describe()}: {type(exc).__name__}: {exc}")


async def write_isolating(post: Post, encoder: LineEncoder, batch: Sequence[Record]) -> WriteResult:
    """Write ``batch`` with ``post`` (one HTTP request per call, raising
    :class:`Malformed` on 400); on a rejected payload, bisect to find the
    malformed records. Other errors propagate (the runner retries)."""
    groups: list[tuple[Record, bytes]] = []
    for rec in batch:
        lines = encoder.encode(rec)
        if lines:
            groups.append((rec, "\n".join(lines).encode("utf-8")))
    result = WriteResult(accepted_upto=batch[-1].seq)
    if groups:
        result.rejected = await _isolate(post, groups)
    return result


async def _isolate(post: Post, groups: list[tuple[Record, bytes]]) -> list[Rejected]:
    try:
        await post(b"\n".join(g[1] for g in groups))
    except Malformed as exc:
        if len(groups) == 1:
            return [Rejected(groups[0][0], str(exc))]
        mid = len(groups) // 2
        return await _isolate(post, groups[:mid]) + await _isolate(post, groups[mid:])
    return []
