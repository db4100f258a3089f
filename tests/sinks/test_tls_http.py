"""HTTPS with a private CA: the InfluxDB sinks verify the server against
``ca_file`` and refuse a server their CA did not sign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.sinks import TlsError
from gateway.sinks.config import InfluxV1Config, InfluxV2Config
from gateway.sinks.influx_v1 import InfluxV1Sink
from gateway.sinks.influx_v2 import InfluxV2Sink

pytestmark = pytest.mark.servers


async def test_influx_v2_over_https_to_victoriametrics(tmp_path: Path, h: Any) -> None:
    tls = h.servers.make_tls(tmp_path)
    srv = h.servers.victoria(tmp_path / "vm", tls=tls).start()
    try:
        rec = h.sample("tls-fan", 1)
        rec.seq = 1
        good = InfluxV2Sink(
            InfluxV2Config(name="vm", url=srv.url, bucket="b", ca_file=str(tls.ca)), "s", "g"
        )
        await good.connect()
        assert (await good.write([rec])).accepted_upto == 1
        await good.close()
        (series,) = h.servers.vm_export(srv.url, 'telemetry_co{device="tls-fan"}', ca=tls.ca)
        assert series["values"] == [float(rec.values[1])]
        stranger = h.servers.make_tls(tmp_path / "other")
        bad = InfluxV2Sink(
            InfluxV2Config(name="vm", url=srv.url, bucket="b", ca_file=str(stranger.ca)), "s", "g"
        )
        with pytest.raises(TlsError, match="certificate verify failed"):
            await bad.connect()
        await bad.close()
        lax = InfluxV2Sink(
            InfluxV2Config(name="vm", url=srv.url, bucket="b", verify_tls=False), "s", "g"
        )
        await lax.connect()  # a lab server: verification off on purpose
        await lax.close()
    finally:
        srv.stop()


async def test_influx_v1_over_https(tmp_path: Path, h: Any) -> None:
    tls = h.servers.make_tls(tmp_path)
    srv = h.servers.influxd(tmp_path / "influxd", tls=tls).start()
    try:
        h.servers.influx_query(srv.url, "CREATE DATABASE tlsdb", post=True, ca=tls.ca)
        cfg = InfluxV1Config(name="i", url=srv.url, database="tlsdb", ca_file=str(tls.ca))
        sink = InfluxV1Sink(cfg, "s", "g")
        await sink.connect()
        rec = h.sample("tls-pump", 1)
        rec.seq = 1
        assert (await sink.write([rec])).rejected == []
        await sink.close()
        (row,) = h.servers.influx_rows(srv.url, "tlsdb", "SELECT co FROM telemetry", ca=tls.ca)
        assert row["co"] == rec.values[1]
        stranger = h.servers.make_tls(tmp_path / "other")
        bad = InfluxV1Sink(cfg.model_copy(update={"ca_file": str(stranger.ca)}), "s", "g")
        with pytest.raises(TlsError, match="certificate verify failed"):
            await bad.connect()
        await bad.close()
    finally:
        srv.stop()
