"""What the lifespan builds and every request reaches: the Guard, the store, the codes."""

from __future__ import annotations

import dataclasses
from typing import Annotated, cast

from fastapi import Depends, Request

import recyclecheck

from .codes import Codes
from .settings import Settings
from .store import Store

__all__ = ["Demo", "DemoDep", "get_demo"]


@dataclasses.dataclass(frozen=True)
class Demo:
    """The app's state, built once at startup (``app.py``)."""

    settings: Settings
    guard: recyclecheck.Guard
    store: Store
    codes: Codes

    def now(self) -> float:
        return self.settings.clock()


# Dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies on a
# thread pool, and the in-memory store relies on running on the event loop's thread only.
async def get_demo(request: Request) -> Demo:
    """The app's :class:`Demo` (a dependency)."""
    return cast(Demo, request.app.state.demo)


DemoDep = Annotated[Demo, Depends(get_demo)]
