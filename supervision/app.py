"""The ASGI application: ``create_app(config)``.

Routes: the JSON API under ``/api/v1`` (OpenAPI at ``/docs`` and
``/openapi.json``), the pages at ``/``, ``/login``, ``/mines/{id}``, and
``/healthz``. The lifespan runs the MQTT subscriber and the alert evaluator
as tasks of the server's event loop, unless ``background=False`` (tests of
the HTTP side alone, the admin command).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from supervision.alerting import views as alerting_views
from supervision.alerting.evaluator import Evaluator
from supervision.auth import views as auth_views
from supervision.auth.deps import PlatformOperator
from supervision.config import PlatformConfig
from supervision.context import PlatformContext
from supervision.db import Clock, make_engine, make_sessionmaker, system_clock
from supervision.ingest.stats import IngestStats
from supervision.ingest.subscriber import Subscriber
from supervision.jobs.engine import Dispatcher
from supervision.jobs.publish import Publisher
from supervision.notify import views as notify_views
from supervision.notify.runner import Notifier
from supervision.registry import views as registry_views
from supervision.uploads import pages as upload_pages
from supervision.uploads import views as upload_views
from supervision.web import manage_pages, user_pages
from supervision.web import views as web_views

log = logging.getLogger("minegate.platform")


def stop_this_process(reason: str) -> None:
    """Ask the server to shut down (uvicorn handles SIGTERM gracefully)."""
    os.kill(os.getpid(), signal.SIGTERM)


def create_app(
    config: PlatformConfig,
    *,
    engine: Engine | None = None,
    clock: Clock = system_clock,
    background: bool = True,
    on_failure: Callable[[str], None] = stop_this_process,
) -> FastAPI:
    """The application. A background task (ingest, evaluator) that fails is
    logged with its traceback, recorded as ``ctx.extra["failed"]`` and
    ``on_failure`` is called: by default the server stops, so the service
    manager restarts it and the failure is seen, instead of a web page that
    looks alive over a dead ingest."""
    engine = engine or make_engine(config.database.url)
    ctx = PlatformContext(config, make_sessionmaker(engine), clock, IngestStats())

    def watch(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            exc = RuntimeError("ended unexpectedly")
        reason = f"{task.get_name()} failed: {exc!r}"
        log.critical("%s; stopping the platform", reason, exc_info=exc)
        ctx.extra["failed"] = reason
        on_failure(reason)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if background:
            notifier = Notifier(ctx)
            evaluator = Evaluator(ctx, on_change=notifier.poke)
            ctx.extra["evaluator"] = evaluator
            tasks.append(asyncio.create_task(evaluator.run(), name="alert-evaluator"))
            if config.notify.receivers:
                ctx.extra["notifier"] = notifier
                tasks.append(asyncio.create_task(notifier.run(), name="notify"))
            publisher = Publisher(ctx) if config.publish.sinks else None
            if publisher is not None:
                ctx.extra["publisher"] = publisher
                tasks.append(asyncio.create_task(publisher.run(), name="publish-findings"))

            def job_done(_job: int) -> None:
                evaluator.poke()
                if publisher is not None:
                    publisher.poke()

            if config.jobs.engine == "dramatiq" or config.jobs.workers > 0:
                dispatcher = Dispatcher(ctx, on_done=job_done)
                ctx.extra["dispatcher"] = dispatcher
                tasks.append(asyncio.create_task(dispatcher.run(), name="survey-jobs"))
            if config.mqtt.enabled:
                sub = Subscriber(ctx, on_alarm=evaluator.poke)
                ctx.extra["subscriber"] = sub
                tasks.append(asyncio.create_task(sub.run(), name="mqtt-ingest"))
        for t in tasks:
            t.add_done_callback(watch)
        try:
            yield
        finally:
            for t in tasks:
                t.remove_done_callback(watch)
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="minegate supervision platform",
        version="0.1.0",
        description="Mines, gateways, latest values and alerts of the caller's area. "
        "Authenticate with `Authorization: Bearer <token>`; see docs/platform.md.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(registry_views.router)
    app.include_router(alerting_views.router)
    app.include_router(auth_views.router)
    app.include_router(notify_views.router)
    app.include_router(web_views.router)
    app.include_router(manage_pages.router)
    app.include_router(user_pages.router)
    app.include_router(upload_views.router)
    app.include_router(upload_pages.router)
    app.include_router(upload_views.tus_router(config))
    app.mount("/static", StaticFiles(directory=web_views.STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/api/v1/ingest/stats",
        tags=["ingest"],
        summary="Messages applied and dropped, by reason (this instance)",
    )
    def ingest_stats(_: PlatformOperator) -> dict[str, Any]:
        assert ctx.ingest_stats is not None
        return ctx.ingest_stats.as_dict()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/openapi"):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        text = {403: "Not allowed.", 404: "Not found."}.get(exc.status_code, str(exc.detail))
        return HTMLResponse(
            f'<!doctype html><meta name="viewport" content="width=device-width">'
            f'<title>{exc.status_code}</title><p>{escape(text)}</p><p><a href="/">Mines</a></p>',
            exc.status_code,
        )

    return app
