"""One GET to a history server, its errors turned into :class:`HistoryError`."""

from __future__ import annotations

from typing import Any

import httpx

from supervision.config import HistorySection
from supervision.history import HistoryError


def get_json(config: HistorySection, path: str, params: dict[str, str]) -> Any:
    """The JSON answer of ``GET <url><path>``; :class:`HistoryError` naming
    the server and the reason otherwise (never the password)."""
    auth = (config.username, config.password or "") if config.username else None
    where = f"{config.backend} at {config.url}"
    try:
        with httpx.Client(
            timeout=config.timeout_s,
            verify=str(config.tls_ca) if config.tls_ca else True,
            auth=auth,
        ) as client:
            resp = client.get(config.url.rstrip("/") + path, params=params)
    except httpx.TimeoutException:
        raise HistoryError(f"{where}: no answer within {config.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise HistoryError(f"{where}: {exc}") from None
    if resp.status_code in (401, 403):
        raise HistoryError(f"{where}: HTTP {resp.status_code}: check history.username/password")
    if resp.status_code != 200:
        raise HistoryError(f"{where}: HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        return resp.json()
    except ValueError:
        raise HistoryError(f"{where}: the answer is not JSON: {resp.text[:200]!r}") from None
