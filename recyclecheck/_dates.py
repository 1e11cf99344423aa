"""Calendar arithmetic that cannot overflow.

Providers can report any date a JSON string can spell (``9999-12-31``), and a
moment late on the last representable day has no UTC date in ``datetime``'s
range.  These helpers saturate at ``date.min``/``date.max`` instead of raising
``OverflowError``: a saturated change date is still "after the binding", so a
reported change is never lost to an arithmetic error.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["add_days", "utc_date"]

_UTC = dt.timezone.utc


def add_days(day: dt.date, days: int) -> dt.date:
    """``day`` plus ``days`` (negative to go back), clamped to the ``date`` range."""
    ordinal = day.toordinal() + days
    if ordinal < 1:
        return dt.date.min
    if ordinal > dt.date.max.toordinal():
        return dt.date.max
    return dt.date.fromordinal(ordinal)


def utc_date(moment: dt.datetime) -> dt.date:
    """The UTC calendar date of an aware ``moment``, clamped to the ``date`` range."""
    offset = moment.utcoffset() or dt.timedelta(0)
    try:
        return (moment - offset).date()
    except OverflowError:
        return dt.date.max if offset < dt.timedelta(0) else dt.date.min
