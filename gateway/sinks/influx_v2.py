"""InfluxDB 2.x / 3.x / VictoriaMetrics sink: ``/api/v2/write`` through the
official async client (``influxdb_client.client.influxdb_client_async``; the
write goes through its ``WriteService`` so the body is encoded once, by us).

Token authentication, org and bucket, optional gzip, TLS with a custom CA.
Errors map as in :mod:`gateway.sinks.influx_common`.
"""

from __future__ import annotations

import gzip

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService

from gateway.sinks.base import NotFound, SinkError
from gateway.sinks.config import InfluxV2Config
from gateway.sinks.influx_common import (
    TRANSPORT_ERRORS,
    InfluxSink,
    error_for_status,
    redact_url,
)


class InfluxV2Sink(InfluxSink):
    type_name = "influxdb_v2"

    def __init__(self, cfg: InfluxV2Config, site: str, gateway: str) -> None:
        super().__init__(site, gateway)
        self.cfg = cfg
        self._client: InfluxDBClientAsync | None = None
        self._writes: WriteService | None = None

    def describe(self) -> str:
        return f"{redact_url(self.cfg.url)} org={self.cfg.org or '-'} bucket={self.cfg.bucket}"

    async def connect(self) -> None:
        await self.close()
        kwargs: dict[str, object] = {"verify_ssl": self.cfg.verify_tls}
        if self.cfg.ca_file:
            kwargs["ssl_ca_cert"] = self.cfg.ca_file
        client = InfluxDBClientAsync(
            url=self.cfg.url,
            token=self.cfg.token,
            org=self.cfg.org,
            timeout=int(self.cfg.timeout_s * 1000),
            # compressed here, at level 1: the client's own gzip uses level 9,
            # which costs more CPU than the whole rest of the write path
            enable_gzip=False,
            **kwargs,
        )
        self._client = client
        try:
            await self._guard(client.ping())
        except NotFound:
            pass  # a server without /ping (some InfluxDB 3 / cloud setups) is still there
        except SinkError:
            await self.close()
            raise
        self._writes = WriteService(client.api_client)
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        self._writes = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _post(self, body: bytes) -> None:
        if self._writes is None:
            raise SinkError(f"{self.describe()}: not connected")
        extra = {}
        if self.cfg.gzip:
            body = gzip.compress(body, compresslevel=1)
            extra["content_encoding"] = "gzip"
        await self._guard(
            self._writes.post_write_async(
                org=self.cfg.org,
                bucket=self.cfg.bucket,
                body=body,
                precision="ns",
                content_type="text/plain; charset=utf-8",
                _return_http_data_only=False,
                **extra,
            )
        )

    async def _guard(self, call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except ApiException as exc:
            if not exc.status:  # the client's own failure, not an HTTP answer
                self.connected = False
                raise SinkError(f"{self.describe()}: {exc.reason}") from exc
            raise error_for_status(exc.status, exc.body, self.describe()) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._link_failed(exc) from exc
