"""The Decision value returned by ``Guard.check``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ._policy import Action, Reason

__all__ = ["Decision"]


@attrs.frozen(slots=True)
class Decision:
    """What to do with this login, and why.

    ``action`` is the verdict; ``reason`` the stable why; ``reissued_on`` the
    change date when a provider gave one; ``since`` the date the provider was
    asked about; ``provider`` its name; ``cached`` whether the answer came from
    the fact cache; ``elapsed`` the seconds spent in ``check``;
    ``masked_number`` the number as people may see it.  Nothing in it, its
    ``repr`` included, holds the full number.
    """

    action: Action
    reason: Reason
    since: dt.date
    provider: str
    masked_number: str
    reissued_on: dt.date | None = None
    cached: bool = False
    elapsed: float = 0.0

    @property
    def step_up_required(self) -> bool:
        """True unless the login may proceed on the SMS code alone.

        ``DENY`` counts too, so ``if decision.step_up_required:`` never lets a
        denied login through.
        """
        return self.action is not Action.ALLOW

    @property
    def allowed(self) -> bool:
        """True only for ``Action.ALLOW``."""
        return self.action is Action.ALLOW

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, enums as their string values)."""
        return {
            "action": self.action.value,
            "reason": self.reason.value,
            "step_up_required": self.step_up_required,
            "reissued_on": self.reissued_on.isoformat() if self.reissued_on else None,
            "since": self.since.isoformat(),
            "provider": self.provider,
            "cached": self.cached,
            "elapsed": round(self.elapsed, 6),
            "masked_number": self.masked_number,
        }
