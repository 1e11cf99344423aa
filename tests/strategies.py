"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered

dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31))
optional_dates = st.none() | dates

#: Every fixed UTC offset a real zone uses, -12:00 to +14:00 in quarter hours.
offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda quarters: dt.timezone(dt.timedelta(minutes=15 * quarters))
)

answers = st.one_of(
    st.builds(LastChange, optional_dates, optional_dates),
    st.builds(ChangedSince, dates, st.booleans()),
    st.just(NoData()),
    st.just(NotCovered()),
)
