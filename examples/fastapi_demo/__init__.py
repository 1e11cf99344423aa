"""The recyclecheck FastAPI demo: an async SMS-code login API that checks for recycled numbers.

From the repository root (needs ``pip install fastapi uvicorn``)::

    python -m examples.fastapi_demo

or ``uvicorn --factory examples.fastapi_demo:create_app``; then try the journey
with ``curl`` (the codes the fake gateways "sent" are at ``GET /dev/outbox``)
or open http://127.0.0.1:8000/docs.  The journey is drawn in ``login.py``;
the settings (environment variables) are in ``settings.py``.
"""

from __future__ import annotations

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
