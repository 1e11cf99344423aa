"""Provider facts as the cache keeps them, and the monotonic rules for reusing them.

A fact is what a provider said, reduced to two claims that stay true as time
passes: "a change happened on or after C" (true forever, so kept long) and
"no change from Q up to when we asked" (true only while fresh).  A check asking
about date X is answered by the first claim when ``C >= X`` and by the second
when ``Q <= X`` and it is fresh; otherwise the provider is asked again.
Unknowns (no data, not covered) and failures are never facts.
"""

from __future__ import annotations

import datetime as dt
import json

import attrs

from ._answers import Answer, ChangedSince, LastChange
from ._dates import add_days

__all__ = ["Fact", "answer_from_fact", "fact_from_answer", "merge"]


@attrs.frozen(slots=True)
class Fact:
    """What the cache stores for one (provider, number).

    ``changed_from``: a change is known on or after this date (``change_exact``:
    it is the exact change date).  ``quiet_from``: no change from this date
    through the moment of asking; trusted until ``quiet_until`` (epoch seconds).
    """

    changed_from: dt.date | None = None
    change_exact: bool = False
    quiet_from: dt.date | None = None
    quiet_until: float = 0.0

    def to_bytes(self) -> bytes:
        """Serialise for an out-of-process cache (no number inside)."""
        return json.dumps(
            [
                self.changed_from.isoformat() if self.changed_from else None,
                self.change_exact,
                self.quiet_from.isoformat() if self.quiet_from else None,
                self.quiet_until,
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fact:
        """Inverse of :meth:`to_bytes`; raises ``ValueError`` on anything else."""
        try:
            changed, exact, quiet, until = json.loads(data)
            if not isinstance(exact, bool) or isinstance(until, bool):
                raise TypeError("bad field types")
            return cls(
                changed_from=dt.date.fromisoformat(changed) if changed is not None else None,
                change_exact=exact,
                quiet_from=dt.date.fromisoformat(quiet) if quiet is not None else None,
                quiet_until=float(until),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError("not a serialised Fact") from exc


def fact_from_answer(answer: Answer, *, quiet_until: float) -> Fact | None:
    """Reduce a definite answer to a Fact; ``None`` for unknowns."""
    if isinstance(answer, LastChange):
        quiet = dt.date.min if answer.on is None else add_days(answer.on, 1)
        if answer.covered_since is not None:
            quiet = max(quiet, answer.covered_since)
        return Fact(
            changed_from=answer.on,
            change_exact=answer.on is not None,
            quiet_from=quiet,
            quiet_until=quiet_until,
        )
    if isinstance(answer, ChangedSince):
        if answer.changed:
            return Fact(changed_from=answer.since)
        return Fact(quiet_from=answer.since, quiet_until=quiet_until)
    return None


def merge(old: Fact | None, new: Fact) -> Fact:
    """Combine an older fact with a newer one.

    The latest known change wins; the quiet claim is the newer observation's.
    """
    if old is None or old.changed_from is None:
        return new
    if new.changed_from is not None and new.changed_from >= old.changed_from:
        return new
    return attrs.evolve(new, changed_from=old.changed_from, change_exact=old.change_exact)


def answer_from_fact(fact: Fact, since: dt.date, now: float) -> Answer | None:
    """The answer the fact gives for a check asking about ``since``, or ``None``."""
    changed = fact.changed_from
    if changed is not None and changed >= since:
        return LastChange(changed) if fact.change_exact else ChangedSince(changed, True)
    quiet = fact.quiet_from
    if quiet is not None and quiet <= since and now < fact.quiet_until:
        # A change before the quiet window is history the policy need not see.
        return ChangedSince(since, False)
    return None
