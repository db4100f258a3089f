"""InfluxDB 1.x sink: ``POST /write?db=&rp=&precision=ns`` over aiohttp.

Basic authentication (``Authorization`` header) when a username is set,
optional gzip, TLS with a custom CA. Errors map as in
:mod:`gateway.sinks.influx_common` (400 partial write -> rejects, 401/403 ->
AuthError, 404 database not found -> NotFound, 5xx/timeout/refused ->
retryable).
"""

from __future__ import annotations

import base64
import gzip
import ssl

import aiohttp

from gateway.sinks.base import SinkError
from gateway.sinks.config import InfluxV1Config
from gateway.sinks.influx_common import (
    TRANSPORT_ERRORS,
    InfluxSink,
    error_for_status,
    redact_url,
    ssl_context,
)


class InfluxV1Sink(InfluxSink):
    type_name = "influxdb_v1"

    def __init__(self, cfg: InfluxV1Config, site: str, gateway: str) -> None:
        super().__init__(site, gateway)
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        base = cfg.url.rstrip("/")
        self._write_url = f"{base}/write"
        self._ping_url = f"{base}/ping"
        self._params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        self._session_headers: dict[str, str] = {}
        if cfg.username:
            cred = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self._session_headers["Authorization"] = f"Basic {cred}"
        if cfg.gzip:
            self._headers["Content-Encoding"] = "gzip"

    def describe(self) -> str:
        rp = f"/{self.cfg.retention_policy}" if self.cfg.retention_policy else ""
        return f"{redact_url(self.cfg.url)} db={self.cfg.database}{rp}"

    async def connect(self) -> None:
        await self.close()
        ssl_arg: ssl.SSLContext | bool = True
        if self.cfg.url.startswith("https"):
            ssl_arg = ssl_context(self.cfg.ca_file, self.cfg.verify_tls)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            connector=aiohttp.TCPConnector(ssl=ssl_arg),
            headers=self._session_headers,
        )
        try:
            await self._call("GET", self._ping_url, None)
        except SinkError:
            await self.close()
            raise
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _post(self, body: bytes) -> None:
        data = gzip.compress(body, compresslevel=1) if self.cfg.gzip else body
        await self._call("POST", self._write_url, data)

    async def _call(self, method: str, url: str, data: bytes | None) -> None:
        if self._session is None:
            raise SinkError(f"{self.describe()}: not connected")
        try:
            async with self._session.request(
                method,
                url,
                params=self._params if data is not None else None,
                data=data,
                headers=self._headers if data is not None else None,
            ) as resp:
                if resp.status >= 300:
                    raise error_for_status(resp.status, await resp.read(), self.describe())
        except TRANSPORT_ERRORS as exc:
            raise self._link_failed(exc) from exc
