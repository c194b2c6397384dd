"""What every signed aggregate shares: steps authorised by their signers, idempotent retry.

The *signed content* of a stored event is every field of the event except the framework's
(originator id, version, timestamp, topic) and the derived ones listed in ``UNSIGNED``;
it is exactly the ``content`` a client signed (see ``domain.signing``).  So any stored
signature can be checked again later from the event alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.positions import StepRule
from domain.region import RegionPath
from domain.signing import content_digest

FRAMEWORK_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
UNSIGNED = frozenset({"signatures", "region_path"})


class Authoriser(Protocol):
    """Checks the command's signatures for one step; returns what the event stores.

    Built by the application service from the command's signatures, the officials who
    signed and the record time (see ``domain.authorisation.authorise``).
    """

    def __call__(self, *, step: str, subject: UUID, content: Mapping[str, Any] | bytes,
                 rule: StepRule, region_path: RegionPath, day: dt.date) -> list[dict]: ...


def business_date(value: object, field: str = "effective_date") -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInput("must be a calendar date (YYYY-MM-DD)", field=field)
    return value


def step_name(event: object) -> str:
    """'Household.Applied' — the event's class name within its aggregate."""
    return type(event).__qualname__


# Fields left out of the signed content when they are null: an optional field added to an
# event later (a payment's ``batch``) leaves every earlier event's content as it was signed.
UNSIGNED_WHEN_NULL = frozenset({"batch"})


def signed_content(event: object) -> dict[str, Any]:
    return {k: v for k, v in vars(event).items() if k not in FRAMEWORK_FIELDS | UNSIGNED
            and not (v is None and k in UNSIGNED_WHEN_NULL)}


class SignedAggregate(Aggregate):
    """An aggregate whose steps carry signatures and whose retries are no-ops.

    ``accepted`` maps the digest of each accepted step's signed content to the version
    it produced, so a client that retries a step it already got through (same content)
    is answered with nothing new rather than an out-of-order error.
    """

    class Event(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            # A batch's row is retried only as its batch (whose manifest is digested).
            if "signatures" in vars(self) and vars(self).get("batch") is None:
                digest = content_digest(step_name(self), self.originator_id, signed_content(self))
                aggregate.accepted[digest] = self.originator_version

    def _init_accepted(self, step: str, content: Mapping[str, Any]) -> None:
        self.accepted = {content_digest(step, self.id, content): 1}

    def already_accepted(self, step: str, content: Mapping[str, Any] | bytes) -> bool:
        return content_digest(step, self.id, content) in self.accepted
