"""The demo's Flask extension objects (no per-app state: ``init_app`` wires each app)."""

from __future__ import annotations

from recyclecheck.flask import RecycleCheck

__all__ = ["recyclecheck_ext"]

#: ``recyclecheck_ext.check(...)`` asks the current app's Guard.
recyclecheck_ext = RecycleCheck()
