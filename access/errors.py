"""Refusals of who may do what, where: named after the rule, like a domain error.

Every adapter (HTTP, CLI, console) reports them as it reports a domain refusal: the rule,
the field and a status (``api.problems`` turns them into problem+json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import RecordConflictError

from domain.errors import DomainError

TYPE_BASE = "https://zhuisu.example/problems/"


class Refusal(Exception):
    """A request refused by the API's own rules; named after the rule, like a domain error."""

    status = 403

    def __init__(self, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers

    @property
    def rule(self) -> str:
        return type(self).__name__


class NotAuthenticated(Refusal):
    """No bearer token, or one that is unknown or revoked."""

    status = 401

    def __init__(self, message: str):
        super().__init__(message, field="Authorization",
                         headers={"WWW-Authenticate": 'Bearer realm="zhuisu"'})


class RoleNotPermitted(Refusal):
    """The token's role may not do this (``access.roles``: the role × action and step tables)."""


class OutsideJurisdiction(Refusal):
    """The subject lies outside the region subtree the token is bound to."""


@dataclass(frozen=True)
class Problem:
    rule: str
    status: int
    detail: str
    field: str | None = None

    @property
    def type(self) -> str:
        return TYPE_BASE + self.rule

    def as_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.rule, "status": self.status,
                                "detail": self.detail, "rule": self.rule, "field": self.field}
        if instance:
            body["instance"] = instance
        return body

    def line(self) -> str:
        """One line for a terminal: ``error: SignatureInvalid [signatures[0].signature]: …``."""
        where = f" [{self.field}]" if self.field else ""
        return f"error: {self.rule}{where}: {self.detail}"


def refusal_problem(exc: BaseException) -> Problem | None:
    """The problem a refusal stands for: a domain rule, an access rule or a lost race."""
    if isinstance(exc, (DomainError, Refusal)):
        return Problem(exc.rule, exc.status, exc.message, exc.field)
    if isinstance(exc, RecordConflictError):
        return Problem("ConcurrentWrite", 409,
                       "concurrent write, retry: another command changed the same record first")
    return None
