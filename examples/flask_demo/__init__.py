"""The recyclecheck Flask demo: SMS-code login with a recycled-number check, step-up and recovery.

From the repository root::

    flask --app examples.flask_demo run

then open http://127.0.0.1:5000.  The developer panel beside the login page
lists the seeded accounts and shows the codes the fake SMS and e-mail gateways
"sent".  See ``docs/integration.md`` for the walk-through.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
