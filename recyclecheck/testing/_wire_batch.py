"""What a request asking about several numbers at once carries, for the server and the mocks.

A wire parses a batch request (Twilio's ``POST /v2/batch/query``, an RND
``tnList`` of more than one item) into a :class:`BatchParsed`, whose
``endpoint`` is ``"batch"`` and whose ``numbers`` lists every number asked, in
request order.  Faults work per request, as for single lookups: a fault
injected for one of the numbers, or a number scripted with a ``ProviderError``,
answers the whole request, except where the provider reports failures item by
item (``per_item_failures``: Twilio's ``twilio_error_code``), where a scripted
error fails that item only.
"""

from __future__ import annotations

import attrs

from ._backend import Backend
from ._faults import Fault, fault_for_error
from ._wire_base import Parsed

__all__ = ["BatchParsed", "scripted_fault"]


@attrs.frozen
class BatchParsed(Parsed):
    """A request about several numbers: each one's E.164 form (``None`` when unreadable)."""

    numbers: tuple[str | None, ...] = attrs.field(default=(), repr=False)
    #: Whether a number scripted with an error fails only its own item.
    per_item_failures: bool = False


def scripted_fault(parsed: Parsed, backend: Backend) -> Fault | None:
    """The fault a scripted ``ProviderError`` makes of the whole request, if any.

    A single lookup fails as its number is scripted to; a batch fails as its
    first number scripted with an error does, unless its provider reports
    failures per item.
    """
    if isinstance(parsed, BatchParsed):
        if parsed.per_item_failures:
            return None
        for number in parsed.numbers:
            failure = backend.failure(number)
            if failure is not None:
                return fault_for_error(failure)
        return None
    failure = backend.failure(parsed.number)
    return None if failure is None else fault_for_error(failure)
