"""Refusals.  Each exception is named after the rule it enforces and carries the field
that broke it, so every adapter (HTTP, CLI) can report "field + rule" the same way."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by a rule.  ``field`` names the offending input."""

    status = 422  # the adapter maps this to an HTTP status in one place

    def __init__(self, message: str, *, field: str | None = None, **details: object):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    @property
    def rule(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.rule}{where}: {self.message}"


class InvalidInput(DomainError):
    """A value is malformed or out of its allowed range."""


class NotFound(DomainError):
    status = 404


class AlreadyExists(DomainError):
    status = 409


class IdempotencyConflict(DomainError):
    """The same idempotency key / movement id was reused with different content."""

    status = 409


class StepOutOfOrder(DomainError):
    """A procedure step was attempted before the steps it depends on."""

    status = 409


class NoticePeriodNotElapsed(DomainError):
    """A public notice (公示) must stay up at least seven days before the next step."""

    status = 409


class ObjectionsOutstanding(DomainError):
    """Objections raised during a public notice must be resolved before moving on."""

    status = 409


class ExitChecksFailed(DomainError):
    """An exit (脱贫退出) needs income above the year's line and 两不愁三保障 all met."""


class MissingSignature(DomainError):
    """A step lacks a signature in a role the procedure requires."""


class SignatureInvalid(DomainError):
    """A signature does not verify against a key the official held at that time."""

    status = 403


class SignerNotAuthorised(DomainError):
    """The signer holds no position that grants the role in that region on that date."""

    status = 403


class SeparationOfDuties(DomainError):
    """Preparer (经办) and approver (审批) must be different officials."""

    status = 403


class HouseholdNotRegistered(DomainError):
    """A household payment needs a household registered at the payment's business date."""


class InsufficientFunds(DomainError):
    """No account may go negative."""


class ForbiddenPurpose(DomainError):
    """A purpose on the negative list of the central special poverty funds rules."""


class ProjectNotApproved(DomainError):
    """A project payment needs an approved project within its budget."""


class AlreadyReversed(DomainError):
    """A movement can be reversed once."""

    status = 409
