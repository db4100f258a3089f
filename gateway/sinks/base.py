"""The sink contract: one small class per uplink, and its errors.

A sink turns a batch of outbox records into one delivery to one server. It
never buffers, never retries and never sleeps: the :class:`~gateway.sinks.runner.SinkRunner`
owns the outbox cursor, the batching, the backoff and the retries.

Contract of every sink (the runner relies on each point):

* ``connect()`` opens (or re-opens) the connection and may be called again
  after any failure; it raises a :class:`SinkError` when the server cannot be
  reached or refuses us (wrong credentials -> :class:`AuthError`, TLS
  failure -> :class:`TlsError`, unknown bucket/database -> :class:`NotFound`).
* ``write(batch)`` is only called after a successful ``connect()`` and never
  after ``close()``. The batch is non-empty, in strictly increasing ``seq``
  order. ``write`` does exactly one of three things:

  1. the server accepted every record: return ``WriteResult(accepted_upto=batch[-1].seq)``;
  2. the server accepted every record except some it rejected as malformed
     (HTTP 400 partial write, field type conflict): return a result whose
     ``rejected`` lists those records with the server's reason. The runner
     sets them aside (kept, counted, never retried) and acks the batch;
  3. a fault that may heal (server down, timeout, 5xx, wrong credentials):
     raise :class:`SinkError`. ``SinkError.accepted_upto`` tells the runner
     how far the server had confirmed the batch before the fault (a prefix,
     e.g. the MQTT publishes that were PUBACKed); the rest is sent again.

* ``close()`` releases the connection; it is idempotent and never raises for
  a connection that is already gone.

Delivery is at-least-once: a record may reach the server twice after a crash
between the server's acceptance and the outbox ack, never zero times.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.model import Record


class SinkError(Exception):
    """A delivery failed. ``retryable`` says whether trying again soon can help.

    The message carries the server's own words (HTTP body, MQTT reason code).
    """

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        status: int | None = None,
        accepted_upto: int = 0,
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.status = status
        self.accepted_upto = accepted_upto


class AuthError(SinkError):
    """Wrong or missing credentials (HTTP 401/403, MQTT "not authorised").

    Not worth retrying quickly: the runner keeps trying slowly (someone may
    fix the password on the server) and shows the error in ``status()``.
    """

    retryable = False


class TlsError(SinkError):
    """TLS handshake failed (unknown CA, bad client certificate, hostname)."""

    retryable = False


class NotFound(SinkError):
    """The bucket, database or endpoint does not exist on the server."""

    retryable = False


def is_transient(exc: BaseException) -> bool:
    """The one place that decides whether a sink's failure is transient, so
    worth a quick retry.

        ``True``: transient (connection refused/reset, timeout, 5xx, broker gone).
        ``False``: needs a human (credentials, TLS, unknown bucket) or is a bug;
        the runner still retries those, but slowly, so nothing is ever lost.
    """
    if isinstance(exc, SinkError):
        return exc.retryable
    if isinstance(exc, ssl.SSLError):
        return False
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the server refused as malformed, with the server's reason."""

    record: Record
    reason: str


@dataclass(slots=True)
class WriteResult:
    """What the server accepted: every record with ``seq <= accepted_upto``
    except those in ``rejected``."""

    accepted_upto: int
    rejected: list[Rejected] = field(default_factory=list)


class Sink(ABC):
    """One uplink. See the module docstring for the full contract."""

    #: the ``type`` key of the sink's config table
    type_name: ClassVar[str] = ""

    #: true between a successful connect() and a failure or close()
    connected: bool = False

    #: set by the runner: while it returns True (an alarm was stored behind
    #: the batch being written), a sink may end ``write`` early, accepting
    #: a prefix of the batch (``WriteResult.accepted_upto``); the runner
    #: then sends the alarm and takes the rest again. A sink whose write is
    #: one request (InfluxDB) ignores it.
    yield_now: Callable[[], bool] | None = None

    @classmethod
    def from_config(cls, cfg: Any, site: str, gateway: str) -> Sink:
        """The sink for one validated config table (its model in
        ``SINK_REGISTRY``); ``cls(cfg, site, gateway)`` unless a sink needs
        more from the config."""
        return cls(cfg, site, gateway)  # type: ignore[call-arg]

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def write(self, batch: list[Record]) -> WriteResult: ...

    @abstractmethod
    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where this sink sends (for logs and status; never secrets)."""
        return self.type_name
