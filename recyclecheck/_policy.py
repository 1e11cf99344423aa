"""The decision policy: a pure function from (binding, provider answer, policy) to an outcome.

Nothing here reads a clock, a network or a global: the Guard passes ``today``
in, so every rule can be tested exhaustively without I/O.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from ._answers import Answer, ChangedSince, LastChange, NoData, NotCovered
from .exceptions import ConfigurationError, InvalidInput, ProviderError

__all__ = [
    "CLOCK_SKEW",
    "EARLIEST_BINDING",
    "MARGIN",
    "MAX_TRUSTED_BINDING_AGE",
    "Action",
    "Outcome",
    "Policy",
    "Reason",
    "binding_date",
    "classify",
    "evaluate",
    "question_date",
    "recently_bound",
]

#: Providers speak in calendar dates without a time zone; one day covers every zone.
MARGIN = dt.timedelta(days=1)
#: How far in the future a ``bound_at`` may lie before it is refused as a mistake.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: The earliest ``bound_at`` accepted.  No account was bound to a mobile number
#: before 1970; an earlier value is a placeholder (``date.min``, a zero timestamp
#: read in the wrong zone), and guessing what it meant could let someone in.
EARLIEST_BINDING = dt.date(1970, 1, 1)
_EARLIEST_MOMENT = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Action(str, enum.Enum):
    """What the app should do with this login."""

    ALLOW = "allow"
    STEP_UP = "step_up"
    DENY = "deny"

    def __str__(self) -> str:
        return self.value


class Reason(str, enum.Enum):
    """Why: a stable string for logs, metrics and branching."""

    NOT_REISSUED = "not_reissued"
    REISSUED_AFTER_BINDING = "reissued_after_binding"
    NO_DATA = "no_data"
    NOT_COVERED = "not_covered"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    RECENTLY_BOUND = "recently_bound"

    def __str__(self) -> str:
        return self.value


def _action(_instance: object, attribute: attrs.Attribute[Action], value: object) -> None:
    if not isinstance(value, Action):
        raise ConfigurationError(f"{attribute.name} must be a recyclecheck.Action")


#: The longest ``Policy(trust_recent_binding=...)`` accepted: under the shortest aging
#: period carriers keep a cancelled number before reissuing it (45 days in the US, by
#: FCC rule; 90 days at the large Chinese carriers).
MAX_TRUSTED_BINDING_AGE = dt.timedelta(days=44)


def _recent_binding(value: object) -> dt.timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, dt.timedelta)):
        raise ConfigurationError("trust_recent_binding must be a timedelta or a number of days")
    age = value if isinstance(value, dt.timedelta) else dt.timedelta(days=value)
    if not dt.timedelta(days=1) <= age <= MAX_TRUSTED_BINDING_AGE:
        raise ConfigurationError(
            "trust_recent_binding must be between 1 and 44 days: a cancelled number is "
            "held at least 45 days before it is reissued"
        )
    return dt.timedelta(days=age.days)


def _not_allow(_instance: object, attribute: attrs.Attribute[Action], value: Action) -> None:
    if value is Action.ALLOW:
        raise ConfigurationError(
            f"{attribute.name} cannot be ALLOW: a number that changed hands since the "
            "binding must never log in on an SMS code alone"
        )


@attrs.frozen
class Policy:
    """Maps each reason to an action.  The defaults are the secure ones.

    Only a confirmed ``not_reissued`` allows; everything else asks for extra
    verification, so an attacker who degrades the provider gains nothing.
    ``on_reissued`` may be ``STEP_UP`` or ``DENY`` but never ``ALLOW``.

    ``trust_recent_binding`` (off by default; a ``timedelta`` or days, 1 to 44):
    a binding proven that recently is allowed without asking anyone
    (``recently_bound``).  Carriers hold a cancelled number at least 45 days
    before reissuing it, so a number whose owner proved it within that time
    cannot have changed hands since.  It spares a customer the provider knows
    nothing about (``no_data``) a second factor at every login after one
    passed step-up; it is only sound because ``bound_at`` never moves on a
    plain SMS-code login.
    """

    on_reissued: Action = attrs.field(default=Action.STEP_UP, validator=[_action, _not_allow])
    on_no_data: Action = attrs.field(default=Action.STEP_UP, validator=_action)
    on_not_covered: Action = attrs.field(default=Action.STEP_UP, validator=_action)
    on_unavailable: Action = attrs.field(default=Action.STEP_UP, validator=_action)
    trust_recent_binding: dt.timedelta | None = attrs.field(default=None, converter=_recent_binding)

    @classmethod
    def fail_open(cls) -> Policy:
        """Allow when the answer is unknown (no data, not covered, provider down).

        For apps that knowingly prefer availability: a recycled number the
        provider *confirms* still steps up, but an attacker who can make the
        provider fail, or a number the provider does not know, gets in.
        """
        return cls(
            on_no_data=Action.ALLOW,
            on_not_covered=Action.ALLOW,
            on_unavailable=Action.ALLOW,
        )

    def action_for(self, reason: Reason) -> Action:
        """The action this policy takes for ``reason``."""
        if reason is Reason.NOT_REISSUED:
            return Action.ALLOW
        if reason is Reason.RECENTLY_BOUND:
            # Only a policy that trusts recent bindings ever gives this reason.
            return Action.ALLOW if self.trust_recent_binding is not None else Action.STEP_UP
        if reason is Reason.REISSUED_AFTER_BINDING:
            return self.on_reissued
        if reason is Reason.NO_DATA:
            return self.on_no_data
        if reason is Reason.NOT_COVERED:
            return self.on_not_covered
        return self.on_unavailable


@attrs.frozen
class Outcome:
    """The policy's verdict before the Guard dresses it up as a Decision."""

    action: Action
    reason: Reason
    reissued_on: dt.date | None = None


_TOO_EARLY = (
    "bound_at is before 1970-01-01, earlier than any account was bound to a mobile "
    "number: pass the real binding moment (if it is unknown, the account's creation)"
)


def binding_date(bound_at: object, *, now: dt.datetime) -> dt.date:
    """Validate ``bound_at`` and return its UTC calendar date.

    An aware ``datetime`` or a ``date``.  Naive datetimes are refused (their
    zone is a guess), and so are moments in the future beyond a small clock
    skew (a date may be at most one day ahead of UTC, for zones east of it)
    and moments before :data:`EARLIEST_BINDING` (1970-01-01 UTC).
    """
    # Comparisons only until the value is known to be in range: aware comparisons
    # cannot overflow, while shifting 0001-01-01 by its UTC offset can.
    if isinstance(bound_at, dt.datetime):
        offset = bound_at.utcoffset()
        if offset is None:
            raise InvalidInput("bound_at must be timezone-aware (a naive datetime is ambiguous)")
        if bound_at > now + CLOCK_SKEW:
            raise InvalidInput("bound_at is in the future")
        if bound_at < _EARLIEST_MOMENT:
            raise InvalidInput(_TOO_EARLY)
        return (bound_at - offset).date()
    if isinstance(bound_at, dt.date):
        if bound_at > now.date() + MARGIN:
            raise InvalidInput("bound_at is in the future")
        if bound_at < EARLIEST_BINDING:
            raise InvalidInput(_TOO_EARLY)
        return bound_at
    raise InvalidInput(
        f"bound_at must be an aware datetime or a date, not {type(bound_at).__name__}"
    )


def question_date(binding: dt.date, today: dt.date) -> dt.date:
    """The date to ask providers about: one day before the binding, never after today."""
    return min(binding - MARGIN, today)


def _reason(answer: object, since: dt.date) -> tuple[Reason, dt.date | None]:  # noqa: PLR0911
    if isinstance(answer, LastChange):
        if answer.on is not None and answer.on >= since:
            return Reason.REISSUED_AFTER_BINDING, answer.on
        if answer.covered_since is not None and answer.covered_since > since:
            return Reason.NOT_COVERED, None
        return Reason.NOT_REISSUED, None
    if isinstance(answer, ChangedSince):
        if answer.changed:
            # "Changed since S" with S before our date may be a change before the
            # binding; it cannot be told apart, so it counts as a change.
            return Reason.REISSUED_AFTER_BINDING, None
        if answer.since > since:
            # Quiet only since a later date: the window after the binding is not vouched for.
            return Reason.NOT_COVERED, None
        return Reason.NOT_REISSUED, None
    if isinstance(answer, NoData):
        return Reason.NO_DATA, None
    if isinstance(answer, NotCovered):
        return Reason.NOT_COVERED, None
    # A custom provider returned something that is not an Answer: never an allow.
    return Reason.PROVIDER_UNAVAILABLE, None


def recently_bound(binding: dt.date, today: dt.date, policy: Policy) -> Outcome | None:
    """The outcome for a binding young enough to trust without asking, else ``None``."""
    trusted = policy.trust_recent_binding
    if trusted is None or (today - binding) >= trusted:
        return None
    return Outcome(policy.action_for(Reason.RECENTLY_BOUND), Reason.RECENTLY_BOUND)


def classify(answer: Answer | ProviderError, since: dt.date) -> Reason:
    """The reason an answer (or failure) gives for a check asking about ``since``."""
    if isinstance(answer, ProviderError):
        return Reason.PROVIDER_UNAVAILABLE
    return _reason(answer, since)[0]


def evaluate(answer: Answer | ProviderError, since: dt.date, policy: Policy) -> Outcome:
    """Decide from a provider ``answer`` (or the failure that replaced it).

    ``since`` is the question date from :func:`question_date`.  Pure: no I/O,
    no clock.
    """
    if isinstance(answer, ProviderError):
        reason, reissued_on = Reason.PROVIDER_UNAVAILABLE, None
    else:
        reason, reissued_on = _reason(answer, since)
    return Outcome(policy.action_for(reason), reason, reissued_on)
