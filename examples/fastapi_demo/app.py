"""``create_app``: settings, the lifespan that owns the Guard, and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from . import login
from .codes import Codes
from .guard import build_guard
from .settings import Settings
from .state import Demo, DemoDep
from .store import Store

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The demo app; ``settings`` default to :meth:`Settings.from_env`.

    Nothing is built here: the Guard and the seeded accounts come to life in the
    lifespan, when the server starts, and the Guard is closed when it stops.
    """
    app = FastAPI(title="recyclecheck FastAPI demo", lifespan=lifespan)
    app.state.settings = Settings.from_env() if settings is None else settings
    app.include_router(login.router)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    if app.state.settings.development:
        app.add_api_route("/dev/outbox", outbox, methods=["GET"])
    return app


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One Guard per app: built at startup, closed at shutdown (its provider's connections)."""
    settings: Settings = app.state.settings
    store = await asyncio.to_thread(Store.seeded)  # hashing the seed passwords is CPU work
    with build_guard(settings) as guard:
        app.state.demo = Demo(
            settings=settings,
            guard=guard,
            store=store,
            codes=Codes(ttl=settings.code_ttl, attempts=settings.code_attempts),
        )
        log.info("demo ready: provider=%s timeout=%gs", guard.provider_name, guard.timeout)
        try:
            yield
        finally:
            del app.state.demo
            log.info("demo stopping: closing the Guard")


async def healthz() -> dict[str, str]:
    """Liveness: answered by the event loop, so it stalls if anything blocks the loop."""
    return {"status": "ok"}


async def outbox(demo: DemoDep) -> list[dict[str, Any]]:
    """Development only: what the fake SMS and e-mail gateways "sent", newest first."""
    return [dataclasses.asdict(message) for message in reversed(demo.store.outbox)]
