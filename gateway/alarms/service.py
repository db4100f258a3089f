"""The alarm engine inside the running gateway.

``AlarmService(config).attach(gateway)`` makes the engine see every reading
(``Gateway.add_observer``: before report by exception, comm-loss records
included) and runs, beside the pollers:

* the forwarder: every transition becomes an ALARM record queued for the
  store at once (the writer commits alarms without waiting for its batch
  interval, and the sink runners send them ahead of any backlog);
* the ticker: every ``alarm_control.tick_ms`` the delays and shelves that
  expire between readings;
* the state file ``alarms.json`` in ``data_dir`` (gateway.alarms.persist);
* the local command socket ``alarms.sock`` in ``data_dir`` (one JSON request
  per line, one JSON reply per line: ``minegate alarms``), and the MQTT
  command topic when ``alarm_control.mqtt_sink`` is set
  (gateway.alarms.mqtt_commands);
* the marks: SAMPLE and SNAPSHOT records of points with an alarm out of
  service say so in ``fields["out_of_service"]`` (:meth:`AlarmService.mark`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.alarms import persist
from gateway.alarms.commands import CommandDesk, Outcome
from gateway.alarms.engine import AlarmEngine
from gateway.alarms.records import to_record
from gateway.alarms.state import Transition
from gateway.config import SiteConfig
from gateway.model import OUT_OF_SERVICE, Record, RecordKind

if TYPE_CHECKING:
    from gateway.alarms.outputs import AlarmOutputs
    from gateway.runtime import Gateway

log = logging.getLogger("minegate.alarms")

MAX_REQUEST_BYTES = 4096
_MARKED = (RecordKind.SAMPLE, RecordKind.SNAPSHOT)


class AlarmService:
    def __init__(self, config: SiteConfig, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.clock = clock
        self.state_file = persist.state_path(config.data_dir)
        self.socket_path = config.data_dir / persist.SOCKET_FILENAME
        saved = persist.read(self.state_file)
        if saved is None and self.state_file.exists():
            log.warning(
                "%s is unreadable: alarm states start afresh (latched and shelved alarms "
                "are re-evaluated from the readings)",
                self.state_file,
            )
        self.engine = AlarmEngine(config.alarm_rules, clock=clock, states=persist.states(saved))
        self.units = {(d.name, p.name): p.unit for d in config.devices for p in d.points}
        ctl = config.alarm_control
        self.desk = CommandDesk(
            self.engine,
            {u.name: frozenset(u.rights) for u in ctl.users},
            max_shelve_h=ctl.max_shelve_h,
            clock=clock,
        )
        self._out: asyncio.Queue[Record] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self._dirty.set()  # write the file once at start
        self._save_error: str | None = None  # why alarms.json could not be written
        self._emit: Callable[[Record], Coroutine[Any, Any, None]] | None = None
        self._gateway: Gateway | None = None
        self.outputs: AlarmOutputs | None = None
        if ctl.outputs:
            from gateway.alarms.outputs import AlarmOutputs

            self.outputs = AlarmOutputs(ctl.outputs, config.devices, self.engine)

    def attach(self, gateway: Gateway) -> None:
        self._emit = gateway.emit
        self._gateway = gateway
        gateway.add_observer(self.observe)
        gateway.add_task("alarms", self.run)

    # -- engine inputs ---------------------------------------------------------

    def observe(self, record: Record) -> None:
        trs = self.engine.observe(record)
        if trs:
            self._publish(trs)

    def mark(self, record: Record) -> None:
        """Mark the values of points out of service in a SAMPLE or SNAPSHOT
        record on its way to the store: ``fields["out_of_service"]`` lists
        them (docs/schema.md). Called for every record the gateway queues."""
        oos = self.engine.out_of_service_points(record.device)
        if oos is None or record.kind not in _MARKED:
            return
        points = [p for p in record.points if p in oos]
        if points:
            record.fields = {**record.fields, OUT_OF_SERVICE: points}

    def _publish(self, trs: list[Transition]) -> None:
        for tr in trs:
            cond = self.engine.conditions[tr.alarm]
            origin = cond.origin
            unit = self.units.get((origin.device, origin.point), "") if origin else ""
            self._out.put_nowait(to_record(tr, cond, unit))
            log.info("alarm %s: %s -> %s", tr.alarm, tr.before, tr.after)
        self._dirty.set()
        if self.outputs is not None:
            self.outputs.changed.set()

    def handle(self, request: object, channel: str) -> Outcome:
        """One operator request (from the socket or MQTT): apply, audit."""
        outcome = self.desk.handle(request, channel)
        if outcome.transitions:
            self._publish(outcome.transitions)
        self._out.put_nowait(outcome.audit)
        return outcome

    # -- tasks ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._forward(), name="alarms:forward"),
            asyncio.create_task(self._tick(stop), name="alarms:tick"),
            asyncio.create_task(self._persist(), name="alarms:state"),
        ]
        server = None
        if self.config.alarm_control.socket:
            server = await self._serve_socket()
        if self.config.alarm_control.mqtt_sink:
            from gateway.alarms.mqtt_commands import command_loop

            tasks.append(asyncio.create_task(command_loop(self, stop), name="alarms:mqtt"))
        outputs = None
        if self.outputs is not None and self._gateway is not None:
            gw = self._gateway
            run = self.outputs.run(gw.hubs, self._emit, gw.wall_ns, stop)  # type: ignore[arg-type]
            outputs = asyncio.create_task(run, name="alarms:outputs")
            tasks.append(outputs)
        try:
            await stop.wait()
        finally:
            if outputs is not None:  # let a write under way finish and be recorded
                await asyncio.wait([outputs], timeout=2.0)
            if server is not None:
                server.close()
                with contextlib.suppress(OSError):
                    self.socket_path.unlink()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._flush()

    async def _flush(self) -> None:
        assert self._emit is not None
        while not self._out.empty():
            await self._emit(self._out.get_nowait())
        if not await asyncio.to_thread(self._save):
            log.error("alarm states at stop not saved in %s: %s", self.state_file, self._save_error)

    async def _forward(self) -> None:
        assert self._emit is not None
        while True:
            record = await self._out.get()
            await self._emit(record)

    async def _tick(self, stop: asyncio.Event) -> None:
        period = self.config.alarm_control.tick_ms / 1000.0
        while not stop.is_set():
            await asyncio.sleep(period)
            trs = self.engine.tick()
            if trs:
                self._publish(trs)

    async def _persist(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            failing = self._save_error is not None
            if await asyncio.to_thread(self._save):
                if failing:
                    log.info("%s written again", self.state_file)
            else:
                self._dirty.set()  # a full disk: try again, the states must reach the file
                if not failing:
                    log.error(
                        "cannot write %s: %s; alarms still leave, the file is retried every "
                        "second (until then a restart starts from its older states)",
                        self.state_file, self._save_error,
                    )  # fmt: skip
            await asyncio.sleep(1.0)  # at most one write a second (O(alarms) each)

    def _save(self) -> bool:
        """Write ``alarms.json``; False (the error kept) when the disk refuses."""
        try:
            persist.save(self.state_file, persist.dump(self.engine, self.clock()))
        except OSError as exc:
            self._save_error = str(exc)
            return False
        self._save_error = None
        return True

    async def _serve_socket(self) -> asyncio.AbstractServer | None:
        path = self.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an unclean stop
        try:
            server = await asyncio.start_unix_server(self._client, path=str(path))
        except OSError as exc:
            log.error("alarm command socket %s: %s; `minegate alarms` will not work", path, exc)
            return None
        os.chmod(path, 0o660)
        return server

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10.0)
            reply = self.reply_to(line, "socket")
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def reply_to(self, raw: bytes, channel: str) -> dict[str, Any]:
        """Parse one raw request and answer it (malformed JSON included)."""
        if len(raw) > MAX_REQUEST_BYTES:
            request: object = None
        else:
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
        return self.handle(request, channel).reply


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / persist.SOCKET_FILENAME
