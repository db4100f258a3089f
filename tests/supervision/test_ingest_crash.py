"""A platform instance SIGKILLed with messages in memory loses none: ingest
acknowledges a message to the broker only once its batch committed, so the
broker sends the unacknowledged ones again to the persistent session when
the instance comes back (real mosquitto, real ``minegate platform serve``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from sqlalchemy import func, select

from supervision.db import make_engine, make_sessionmaker
from supervision.db.migrate import upgrade
from supervision.ingest.models import LatestValue, ReceivedSeq

from .conftest import helpers, servers

ROOT = Path(__file__).resolve().parents[2]


def _serve(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def _wait(cond: object, within: float, log: Path) -> None:
    deadline = time.monotonic() + within
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_sigkill_mid_stream_loses_nothing(tmp_path: Path, db_url: str) -> None:
    url = db_url
    engine = make_engine(url)
    upgrade(engine)
    world = helpers.build_world(engine, now_ns=time.time_ns())
    gid = world.gateways["qn1/gw01"]
    broker = servers.mosquitto(tmp_path / "mosquitto").start()
    cfg = tmp_path / "platform.toml"
    # messages sit in memory for 3 s before their batch is written: the
    # kill comes while they are there, received but not written
    cfg.write_text(
        f'[server]\nport = {servers.free_port()}\n[database]\nurl = "{url}"\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "crash-test"\nsession_expiry_s = 600\n'
        "batch_wait_s = 3.0\n"
    )
    log = tmp_path / "serve.log"
    n = 300
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "crash-pub", protocol=mqtt.MQTTv5)
    proc = _serve(cfg, log)
    try:
        _wait(lambda: "subscribed to" in log.read_text(), 60, log)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = [
            pub.publish(
                "minegate/qn1/gw01/telemetry/pm",
                helpers.sample(seq, helpers.T0 + seq, "pm", {"p": seq}),
                qos=1,
            )
            for seq in range(1, n + 1)
        ]
        for info in infos:
            info.wait_for_publish(10)
        time.sleep(1.0)  # delivered to the platform, its batch still waiting
        sessions = make_sessionmaker(engine)

        def written() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(ReceivedSeq).where(ReceivedSeq.gateway_id == gid)) or 0)  # fmt: skip

        before = written()
        assert before < n, "the batch was written before the kill: the test proves nothing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _serve(cfg, log)
        _wait(lambda: written() == n, 30, log)
        with sessions() as s:
            value = s.scalar(select(LatestValue.value).where(LatestValue.gateway_id == gid))
        assert value == n  # the newest one, and every seq once
    finally:
        pub.loop_stop()
        pub.disconnect()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()
        engine.dispose()
