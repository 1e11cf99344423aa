"""What each fake provider covers, in numbers and in time, as the real service documents it.

A fake answers a number outside its provider's coverage the way the real
service does, whatever the script says about that number, so an app (or
``recyclecheck sandbox serve``) never sees an answer the provider cannot give:

=========================  ===============================  ===================================
provider                   covers                           outside it, the fake answers
=========================  ===============================  ===================================
Twilio                     valid numbers of the US          ``reassigned_number.error_code``
``reassigned_number``      (country ``US``)                 ``"60607"`` (Lookup Unsupported
                                                            Country), HTTP 200
Telesign                   valid numbers of the US          add-on status 2803 (Out of
``number_deactivation``                                     coverage)
US RND                     valid +1 numbers of the US and   what the RND says of a number it
                           its territories                  holds no record of: ``"no"`` for a
                                                            date on or after 2021-01-27,
                                                            ``"no_data"`` before
Alibaba                    mainland mobile numbers except   ``Code:
``DescribePhoneTwiceTel``  China Broadnet (192) and the     RequestNumberNotSupported``
``Verify``                 virtual operators' blocks
CAMARA                     the operator's subscribers: the  ``404 IDENTIFIER_NOT_FOUND``; a
                           scripted numbers; dates up to    ``specifiedDate`` after tomorrow
                           tomorrow (UTC)                   ``400 OUT_OF_RANGE``
=========================  ===============================  ===================================

and in time: Twilio has no disconnect data before 2021 ("no_data_available
... generally means that your LastVerifiedDate is prior to January of 2021"),
so it never says "no" about an earlier date; the RND says "no data" for a
date before 2021-01-27 about a number with no disconnection on record.

Sources: ``PROVIDERS.md`` sections 1.1-1.2 (Twilio: "US numbers only",
https://www.twilio.com/docs/lookup/v2-api/reassigned-number), 2.1 (Telesign:
coverage per reseller page, the United States), 3.1 (RND: FCC DA 21-1649
answer rules; records kept since 2020-07-27), 4.1 (Alibaba:
``RequestNumberNotSupported`` for China Broadnet 192 and MVNO numbers), 5
(CAMARA: ``IDENTIFIER_NOT_FOUND``, ``OUT_OF_RANGE``), and ``docs/providers/``.
The virtual operators' blocks (162, 165, 167, 170, 171) are MIIT's
allocations, which the docs do not list.  The RND's answer for a number
outside the US is not documented beyond the general rule above; the adapter
never asks it (a Canadian number would read as "no", i.e. not reassigned).

``ChangedSince(..., True)`` and reissue dates on or after the date asked stay
changes: the floors only stop a fake from vouching for what the real service
cannot know.
"""

from __future__ import annotations

import datetime as dt

import phonenumbers

from ..providers._answers import Answer, LastChange
from ._wire_base import Verdict, verdict

__all__ = [
    "CAMARA_LATEST_DAY_AHEAD",
    "RND_NOT_IN_DATABASE_NO_DATA_BEFORE",
    "RND_RECORDS_START",
    "TWILIO_DATA_START",
    "aliyun_supports",
    "camara_in_range",
    "region",
    "rnd_covers",
    "rnd_verdict",
    "telesign_covers",
    "twilio_covers",
    "twilio_verdict",
]

#: Twilio's reassigned-number data begins in January 2021.
TWILIO_DATA_START = dt.date(2021, 1, 1)
#: Carriers keep disconnection records for the RND from this day (47 CFR 64.1200(l)(2)).
RND_RECORDS_START = dt.date(2020, 7, 27)
#: For a number it holds no record of, the RND says "no data" before this day, "no" after.
RND_NOT_IN_DATABASE_NO_DATA_BEFORE = dt.date(2021, 1, 27)
#: CAMARA refuses a specifiedDate in the future; one day of slack covers every time zone.
CAMARA_LATEST_DAY_AHEAD = dt.timedelta(days=1)

#: NANP regions whose numbers the RND holds: the US and its territories.
_RND_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
#: Mainland mobile blocks Alibaba cannot check: China Broadnet, then the virtual operators.
_ALIYUN_UNSUPPORTED = ("192", "162", "165", "167", "170", "171")
_CN_MOBILE_DIGITS = 11


def region(e164: str) -> str | None:
    """The region (``"US"``, ``"CN"``...) of a valid number, else ``None``."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.region_code_for_number(parsed)


def twilio_covers(e164: str) -> bool:
    """Twilio's Reassigned Number package: "only available for US phone numbers"."""
    return region(e164) == "US"


def telesign_covers(e164: str) -> bool:
    """Telesign's ``number_deactivation`` add-on: the United States."""
    return region(e164) == "US"


def rnd_covers(e164: str) -> bool:
    """The RND: numbers of the US and its territories."""
    return region(e164) in _RND_REGIONS


def aliyun_supports(e164: str) -> bool:
    """Alibaba's 二次号 check: mainland mobile numbers, but not 192 or MVNO blocks."""
    national = e164.removeprefix("+86")
    if national == e164 or len(national) != _CN_MOBILE_DIGITS or region(e164) != "CN":
        return False
    return not national.startswith(_ALIYUN_UNSUPPORTED)


def camara_in_range(specified: dt.date, today: dt.date) -> bool:
    """Whether a CAMARA operator evaluates ``specifiedDate`` (not in the future)."""
    return specified <= today + CAMARA_LATEST_DAY_AHEAD


def twilio_verdict(answer: Answer, asked: dt.date) -> Verdict:
    """What Twilio says about a covered number: no "no" before its data starts."""
    said = verdict(answer, asked)
    if said is Verdict.UNCHANGED and asked < TWILIO_DATA_START:
        return Verdict.NO_DATA
    return said


def rnd_verdict(e164: str, answer: Answer, asked: dt.date) -> Verdict:
    """What the RND says about ``e164`` for the date ``asked``.

    A number outside the US is never in the RND, whatever the script says;
    one with no disconnection on record is "no data" before 2021-01-27.
    """
    if not rnd_covers(e164):
        unknown_since_records = asked >= RND_NOT_IN_DATABASE_NO_DATA_BEFORE
        return Verdict.UNCHANGED if unknown_since_records else Verdict.NO_DATA
    said = verdict(answer, asked)
    if said is Verdict.UNCHANGED and asked < RND_NOT_IN_DATABASE_NO_DATA_BEFORE:
        on_record = (
            isinstance(answer, LastChange)
            and answer.on is not None
            and answer.on >= RND_RECORDS_START
        )
        return said if on_record else Verdict.NO_DATA
    return said
