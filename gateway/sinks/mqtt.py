"""MQTT sink (aiomqtt 2.x, MQTT 3.1.1): JSON messages per record, a retained
online/offline status topic with a last will, QoS 1 by default.

A batch is accepted only when every publish of it was acknowledged (QoS 1:
``publish`` returns after the broker's PUBACK). When the connection breaks
mid-batch the error carries how far the batch was confirmed (a prefix), the
runner re-sends the rest after reconnecting; the online status is published
again on every (re)connect.

With ``qos = 0`` nothing is acknowledged and delivery is at-most-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import aiomqtt

from gateway.model import Record
from gateway.sinks.base import AuthError, Sink, SinkError, TlsError, WriteResult
from gateway.sinks.config import MqttConfig
from gateway.sinks.mqtt_schema import Message, MqttEncoder

#: CONNACK codes for bad credentials / not authorised (3.1.1 and 5)
_AUTH_CODES = frozenset({4, 5, 134, 135})


def _rc_value(exc: aiomqtt.MqttError) -> int | None:
    rc = getattr(exc, "rc", None)
    if rc is None:
        return None
    return int(getattr(rc, "value", rc))


_T = TypeVar("_T")


class _Client(aiomqtt.Client):
    """aiomqtt's client with its bookkeeping of calls awaiting a reply made
    O(1): aiomqtt 2.5 walks every pending call twice per publish (a
    duplicate check and a count for a warning), which with ``max_inflight``
    publishes awaiting their PUBACK cost about 7 % of the gateway's CPU at
    the benchmark's load. Same behaviour otherwise (the warning aside: the
    sink sets its threshold above ``max_inflight``). An override of a
    private method, so ``tests/sinks/test_mqtt_fast.py`` checks that
    aiomqtt still calls it with these arguments."""

    @contextlib.contextmanager
    def _pending_call(self, mid: int, value: _T, pending_dict: dict[int, _T]) -> Iterator[None]:
        if (
            mid in self._pending_publishes
            or mid in self._pending_subscribes
            or mid in self._pending_unsubscribes
        ):
            raise RuntimeError(f'There already exists a pending call for message ID "{mid}"')
        pending_dict[mid] = value
        try:
            yield
        finally:
            pending_dict.pop(mid, None)


class _Stall:
    """Watches a write's publishes: when some are waiting and no PUBACK
    arrived for ``timeout_s``, cancels them (``fired``)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.fired = False
        self._last = time.monotonic()

    def progress(self) -> None:
        self._last = time.monotonic()

    async def watch(self, tasks: list[asyncio.Task[None]]) -> None:
        while True:
            await asyncio.sleep(self.timeout_s / 4)
            waiting = [t for t in tasks if not t.done()]
            if waiting and time.monotonic() - self._last > self.timeout_s:
                self.fired = True
                for task in waiting:
                    task.cancel()
                return


class _Yielded(Exception):
    """A record left unsent because an alarm is waiting (``Sink.yield_now``)."""


class MqttSink(Sink):
    type_name = "mqtt"

    def __init__(self, cfg: MqttConfig, site: str, gateway: str, name: str = "mqtt") -> None:
        self.cfg = cfg
        self.encoder = MqttEncoder(cfg.topic_prefix, site, gateway)
        self.connected = False
        self.client_id = cfg.client_id or f"minegate-{site}-{gateway}-{name}"[:64]
        self._client: aiomqtt.Client | None = None
        self._link: contextlib.AsyncExitStack | None = None  # holds `async with client`
        self._watcher: asyncio.Task[None] | None = None
        self._inflight: list[asyncio.Task[None]] = []
        self._lost_reason = ""

    @classmethod
    def from_config(cls, cfg: Any, site: str, gateway: str) -> MqttSink:
        return cls(cfg, site, gateway, cfg.name)  # the name is in its client id

    def describe(self) -> str:
        scheme = "mqtts" if self.cfg.tls else "mqtt"
        return f"{scheme}://{self.cfg.host}:{self.cfg.effective_port} {self.encoder.root}"

    def _make_client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(
            self.encoder.status_topic,
            self.encoder.status_payload("offline", "connection lost", time.time_ns()),
            qos=1,
            retain=True,
        )
        tls = None
        if self.cfg.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=self.cfg.ca_file,
                certfile=self.cfg.cert_file,
                keyfile=self.cfg.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        return _Client(
            self.cfg.host,
            self.cfg.effective_port,
            username=self.cfg.username,
            password=self.cfg.password,
            identifier=self.client_id,
            will=will,
            tls_params=tls,
            keepalive=self.cfg.keepalive_s,
            timeout=self.cfg.timeout_s,
            max_inflight_messages=self.cfg.max_inflight,
            clean_session=True,
        )

    def _error(self, exc: aiomqtt.MqttError, during: str, accepted_upto: int = 0) -> SinkError:
        msg = f"{self.describe()}: {during}: {exc}"
        if isinstance(exc.__context__, ssl.SSLError) or "CERTIFICATE" in str(exc).upper():
            return TlsError(msg, accepted_upto=accepted_upto)
        if isinstance(exc, aiomqtt.MqttCodeError) and during == "connect":
            if _rc_value(exc) in _AUTH_CODES:
                return AuthError(msg, accepted_upto=accepted_upto)
        return SinkError(msg, retryable=True, accepted_upto=accepted_upto)

    async def connect(self) -> None:
        await self._drop()
        client = self._make_client()
        # up to max_inflight publishes wait for their PUBACK at once, by design
        client.pending_calls_threshold = self.cfg.max_inflight + 10
        # The client is an async context manager that spans connect() to
        # close(): the exit stack keeps its `async with` open in between.
        link = contextlib.AsyncExitStack()
        try:
            await link.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise self._error(exc, "connect") from exc
        self._client, self._link = client, link
        try:
            await self._publish(
                Message(
                    self.encoder.status_topic,
                    self.encoder.status_payload("online", "connected", time.time_ns()),
                    True,
                )
            )
        except aiomqtt.MqttError as exc:
            await self._drop()
            raise self._error(exc, "publish status") from exc
        self.connected = True
        self._watcher = asyncio.create_task(self._watch_link(client), name="mqtt-link-watch")

    async def _watch_link(self, client: aiomqtt.Client) -> None:
        """Notice a lost link at once: fail the publishes waiting for their
        PUBACK (they would otherwise wait for ``timeout_s``). aiomqtt 2.x
        tells of a lost connection by ending ``client.messages`` with an
        MqttError (its documented reconnection pattern); nothing is
        subscribed, so the iteration ends only then."""
        try:
            async for _ in client.messages:
                pass
        except aiomqtt.MqttError as exc:
            self._lost_reason = str(exc.__cause__) if exc.__cause__ else "disconnected"
        self.connected = False
        for task in self._inflight:
            task.cancel()

    async def _publish(self, msg: Message, puback_wait_s: float | None = None) -> None:
        """Publish and wait for the PUBACK, at most ``puback_wait_s`` (default
        ``timeout_s``; ``math.inf``: the caller bounds the wait itself)."""
        assert self._client is not None
        await self._client.publish(
            msg.topic,
            msg.payload,
            qos=self.cfg.qos,
            retain=msg.retain,
            timeout=self.cfg.timeout_s if puback_wait_s is None else puback_wait_s,
        )

    async def write(self, batch: list[Record]) -> WriteResult:
        if self._client is None:
            raise SinkError(f"{self.describe()}: not connected")
        # A sliding window of max_inflight publishes awaiting their PUBACK:
        # no barrier between groups, so the link stays busy. A record's task
        # is created when the window has room for it (in batch order), not
        # all at once: a thousand tasks queued on the semaphore cost more
        # than the publishes.
        window = asyncio.Semaphore(self.cfg.max_inflight)
        tasks: list[asyncio.Task[None]] = []
        self._inflight = tasks
        # One watchdog per write instead of a timer per publish (aiomqtt's
        # wait_for): the write fails when no PUBACK came for timeout_s.
        stall = _Stall(self.cfg.timeout_s)
        watchdog = asyncio.create_task(stall.watch(tasks), name="mqtt-puback-watchdog")
        stopped: BaseException | None = None  # why the rest of the batch was not started
        try:
            for rec in batch:
                await window.acquire()
                if not self.connected or stall.fired:  # the link went, or stalled
                    window.release()
                    stopped = asyncio.CancelledError()
                    break
                if self.yield_now is not None and self.yield_now():
                    window.release()
                    stopped = _Yielded()
                    break
                msgs = self.encoder.encode(rec)
                tasks.append(asyncio.create_task(self._publish_all(msgs, window, stall)))
            results: list[BaseException | None] = list(
                await asyncio.gather(*tasks, return_exceptions=True)
            )
        except BaseException:
            for task in tasks:  # a cancelled write leaves nothing running
                task.cancel()
            raise
        finally:
            self._inflight = []
            watchdog.cancel()
        if stopped is not None:
            results.append(stopped)
        accepted_upto = 0
        for rec, res in zip(batch, results, strict=False):
            if res is None:
                accepted_upto = rec.seq
                continue
            if isinstance(res, _Yielded):  # an alarm waits: the rest is sent after it
                break
            if isinstance(res, asyncio.CancelledError) and stall.fired:
                self.connected = False
                err = aiomqtt.MqttError(f"no PUBACK for {self.cfg.timeout_s:g} s")
                raise self._error(err, "publish", accepted_upto) from None
            if isinstance(res, asyncio.CancelledError):  # the link watcher saw it go
                self.connected = False
                err = aiomqtt.MqttError(f"connection lost ({self._lost_reason})")
                raise self._error(err, "publish", accepted_upto) from None
            if isinstance(res, aiomqtt.MqttError | TimeoutError):
                self.connected = False
                err = res if isinstance(res, aiomqtt.MqttError) else aiomqtt.MqttError(str(res))
                raise self._error(err, "publish", accepted_upto) from res
            raise res
        return WriteResult(accepted_upto=accepted_upto)

    async def _publish_all(
        self, msgs: list[Message], window: asyncio.Semaphore, stall: _Stall
    ) -> None:
        try:
            for m in msgs:
                await self._publish(m, math.inf)
                stall.progress()
        finally:
            window.release()

    async def _drop(self) -> None:
        """Forget the connection without saying goodbye (the broker keeps or
        sends the will)."""
        self.connected = False
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        link, self._link, self._client = self._link, None, None
        if link is not None:
            try:
                await link.aclose()  # leaves the client's `async with`
            except aiomqtt.MqttError:
                pass  # already gone; nothing left to release

    async def close(self) -> None:
        """Publish the retained offline status, then disconnect cleanly."""
        if self._client is not None and self.connected:
            try:
                await self._publish(
                    Message(
                        self.encoder.status_topic,
                        self.encoder.status_payload("offline", "shutdown", time.time_ns()),
                        True,
                    )
                )
            except aiomqtt.MqttError:
                pass  # broker gone: the will says offline instead
        await self._drop()
