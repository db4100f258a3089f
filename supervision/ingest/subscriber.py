"""The MQTT subscriber: the gateways' topics in, batches applied to the store.

One connection per instance, MQTT 5. Data topics are subscribed through the
shared group ``$share/<group>/...`` so several instances share the load; the
retained ``status`` and ``alarms/active/<alarm>`` topics are subscribed
plainly by every instance (a broker sends no retained messages to shared
subscriptions, and their writes are idempotent). Messages are applied in batches in one transaction each; a
batch that cannot be written (database down) is retried until it is,
never dropped; a batch the database refuses row by row is applied message
by message, and a message refused alone is counted and dropped. A batch
waits ``batch_wait_s`` after its first message for more, so a steady
trickle is written in a few transactions a second, not one per message.

A QoS 1 message is acknowledged to the broker only once the transaction
holding it committed (paho's manual acknowledgement), in the order received:
a platform killed with messages in memory gets them again from its
persistent session (``session_expiry_s`` > 0) when it reconnects, and the
seq dedupe drops what had been written. The CONNECT's receive maximum
(``RECEIVE_WINDOW`` batches) bounds how many unacknowledged messages the
broker sends: the rest wait at the broker, which is the backpressure.
A message that cannot be parsed is acknowledged in turn (counted, dropped).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import DBAPIError, OperationalError

from supervision.config import MqttSection
from supervision.context import PlatformContext
from supervision.ingest.parse import Dropped, Message, parse
from supervision.ingest.service import GatewayDirectory, apply_batch, prune_seqs
from supervision.ingest.stats import IngestStats

log = logging.getLogger("minegate.platform.ingest")

DATA_LEAVES = ("telemetry/+", "snapshot/+", "stats/+", "alarms/+", "events", "metrics", "survey/+", "alerts/survey")  # fmt: skip
RETAINED_LEAVES = ("status", "alarms/active/+")
RETRY_MAX_S = 30.0
RECEIVE_WINDOW = 4  # batches of unacknowledged messages the broker may send


@dataclass(slots=True)
class Received:
    """A message read from the broker, acknowledged after its batch (``msg``
    None: dropped at parse, only the acknowledgement is due)."""

    topic: str
    msg: Message | None
    mid: int
    qos: int
    conn: int  # the connection it came on: acknowledged only on that one


def subscriptions(cfg: MqttSection) -> list[str]:
    prefix = cfg.prefix.rstrip("/")
    share = f"$share/{cfg.shared_group}/" if cfg.shared_group else ""
    plain = [f"{prefix}/+/+/{leaf}" for leaf in RETAINED_LEAVES]
    return [f"{share}{prefix}/+/+/{leaf}" for leaf in DATA_LEAVES] + plain


def share_paho_property_tables() -> None:
    """paho 2.2 builds two dicts of every MQTT 5 property name and type in
    each ``Properties()`` (and rebuilds every name in ``clear()``), which
    it does for every PUBLISH received: 15 %
    of a platform instance's time under a region's load
    (bench/results/platform_profile.md). The tables are constants paho only
    reads: build them once and share them (idempotent; the instances behave
    the same, ``tests/supervision/test_ingest_mqtt.py``)."""
    from paho.mqtt import properties

    cls: Any = properties.Properties
    if getattr(cls, "_minegate_shared_tables", False):
        return
    proto = cls(PacketTypes.PUBLISH)
    types, names, table = proto.types, proto.names, proto.properties

    def __init__(self: Any, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "properties", table)

    compressed = [n.replace(" ", "") for n in names]

    def clear(self: Any) -> None:  # what paho's does, without rebuilding the names
        for name in compressed:
            self.__dict__.pop(name, None)

    cls.__init__ = __init__
    cls.clear = clear
    cls._minegate_shared_tables = True


class Subscriber:
    """Runs until cancelled; reconnects with capped backoff."""

    def __init__(
        self, ctx: PlatformContext, on_alarm: Callable[[set[int]], None] = lambda _g: None
    ) -> None:
        share_paho_property_tables()
        self.ctx = ctx
        self.cfg = ctx.config.mqtt
        if ctx.ingest_stats is None:
            ctx.ingest_stats = IngestStats()
        self.stats: IngestStats = ctx.ingest_stats
        self.directory = GatewayDirectory()
        #: called with the gateways whose alarms, statuses or survey checks
        #: a committed batch applied (the evaluator re-evaluates those)
        self.on_alarm = on_alarm
        self.connected = asyncio.Event()
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=50_000)
        self._paho: Any = None  # paho's client of the live connection
        self._conn = 0  # counts connections

    def _client(self) -> aiomqtt.Client:
        cfg = self.cfg
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry_s
        props.ReceiveMaximum = min(65535, RECEIVE_WINDOW * cfg.batch_max)
        tls = aiomqtt.TLSParameters(ca_certs=str(cfg.tls_ca)) if cfg.tls_ca else None
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=cfg.session_expiry_s == 0,
            properties=props,
            keepalive=cfg.keepalive_s,
            tls_params=tls,
            timeout=10,
        )
        # acknowledged after the write (aiomqtt 2.5 has no option for it;
        # paho 2's client does: manual_ack_set / ack(mid, qos))
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        # a task group: if either loop fails, both stop and the error rises
        # to the server, never a reader filling a queue nobody drains
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._write_loop(), name="ingest-writer")
            tg.create_task(self._read_loop(), name="ingest-reader")

    async def _read_loop(self) -> None:
        delay = 1.0
        while True:
            try:
                async with self._client() as client:
                    for topic in subscriptions(self.cfg):
                        await client.subscribe(topic, qos=1)
                    log.info(
                        "subscribed to %s:%d as %s",
                        self.cfg.host,
                        self.cfg.port,
                        self.cfg.client_id,
                    )
                    self._conn += 1
                    self._paho = client._client
                    self.connected.set()
                    delay = 1.0
                    async for m in client.messages:
                        msg = self._parse(m.topic.value, m.payload)
                        if msg is not None and msg.kind == "ignored":
                            msg = None
                        # waits while the writer is behind
                        await self._queue.put(Received(m.topic.value, msg, m.mid, m.qos, self._conn))  # fmt: skip
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                self.connected.clear()
                self._paho = None
                log.warning(
                    "MQTT %s:%d: %s; retrying in %.0f s", self.cfg.host, self.cfg.port, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _parse(self, topic: str, payload: object) -> Message | None:
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload or "").encode()
        try:
            return parse(
                topic, bytes(payload), prefix=self.cfg.prefix, max_bytes=self.cfg.max_payload_bytes
            )
        except Dropped as exc:
            self.stats.drop(exc.reason, topic)
            return None

    async def _write_loop(self) -> None:
        last_prune = 0
        while True:
            batch: list[Received] = [await self._queue.get()]
            if self.cfg.batch_wait_s > 0 and self._queue.qsize() < self.cfg.batch_max - 1:
                # a transaction costs about as much as a few dozen messages:
                # let more arrive than one at a time
                await asyncio.sleep(self.cfg.batch_wait_s)
            while len(batch) < self.cfg.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._apply_until_done([(r.topic, r.msg) for r in batch if r.msg is not None])
            self._ack(batch)
            now = self.ctx.clock()
            if now - last_prune > 600 * 10**9:
                last_prune = now
                try:
                    await asyncio.to_thread(self._prune, now)
                except OperationalError as exc:  # next time; the table just grows meanwhile
                    log.warning("pruning applied seqs: database unavailable: %s", exc.orig)

    def _ack(self, batch: list[Received]) -> None:
        """Acknowledge a committed batch, in the order received; a message
        of an earlier connection is not: the broker sends it again."""
        paho = self._paho
        if paho is None:
            return
        for r in batch:
            if r.qos > 0 and r.conn == self._conn:
                paho.ack(r.mid, r.qos)

    def _prune(self, now: int) -> None:
        with self.ctx.sessions() as db, db.begin():
            prune_seqs(db, older_than_ns=now - int(self.cfg.dedupe_window_s * 1e9))

    def _apply(self, batch: list[tuple[str, Message]]) -> set[int]:
        counts = IngestStats(quiet=True)
        with self.ctx.sessions() as db, db.begin():
            res = apply_batch(
                db, batch, now_ns=self.ctx.clock(), directory=self.directory, stats=counts
            )
        self.stats.merge(counts)  # committed: now they count
        return res.touched

    async def _apply_until_done(self, batch: list[tuple[str, Message]]) -> None:
        if not batch:
            return
        delay = 0.5
        while True:
            try:
                touched = await asyncio.to_thread(self._apply, batch)
                break
            except OperationalError as exc:
                log.error("database unavailable, batch of %d kept: %s", len(batch), exc.orig)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except DBAPIError as exc:
                if len(batch) == 1:
                    self.stats.drop("db_refused", batch[0][0])
                    log.warning("database refused a message on %r: %s", batch[0][0], exc.orig)
                    return
                for one in batch:  # find the one it refuses
                    await self._apply_until_done([one])
                return
        if touched:
            self.on_alarm(touched)
