"""The one place where refusals become answers: RFC 9457 problem details (problem+json).

Every adapter reports a refusal the same way — the rule that refused it and the field
that broke it — so the HTTP API, the CLI and the logs agree:

* a :class:`domain.errors.DomainError` keeps its own rule, field and status;
* a request the schema rejects (FastAPI ``RequestValidationError``, or a body that is not
  JSON) is ``InvalidInput`` (422) naming the field path in the domain's style
  (``signatures[0].role``);
* two writers racing on one aggregate (eventsourcing ``RecordConflictError``, which
  ``IntegrityError`` specialises) is ``ConcurrentWrite`` (409): nothing was stored, retry;
* a :class:`Refusal` of the API's own rules (who may do what, where; idempotency keys)
  keeps its rule, field and status, like a domain refusal;
* an unknown route or method keeps its HTTP status with the rule ``NotFound`` /
  ``MethodNotAllowed``; a 405 lists in ``Allow`` every method the path has, across the
  routers that declare it;
* ``instance`` is the request's path, masked like a log line (``runtime.logging.mask_text``:
  ID numbers, bank account numbers, bearer tokens).
"""

from __future__ import annotations

from collections.abc import Sequence


from eventsourcing.persistence import RecordConflictError

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Scope

from access.errors import (
    NotAuthenticated,
    OutsideJurisdiction,
    TYPE_BASE,
    Problem,
    Refusal,
    RoleNotPermitted,
    refusal_problem,
)
from domain.errors import DomainError
from runtime.logging import mask_text

MEDIA_TYPE = "application/problem+json"

__all__ = ["IdempotencyKeyInFlight", "IdempotencyKeyReused", "NotAuthenticated",
           "OutsideJurisdiction", "Problem", "Refusal", "RoleNotPermitted", "install",
           "problem_from", "problem_response"]


class IdempotencyKeyReused(Refusal):
    """An ``Idempotency-Key`` already used by this caller for a different request."""

    status = 422


class IdempotencyKeyInFlight(Refusal):
    """The first request with this ``Idempotency-Key`` is still being processed."""

    status = 409


def field_path(loc: Sequence[str | int]) -> str:
    """('body', 'signatures', 0, 'role') → 'signatures[0].role' (the domain's notation)."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def problem_from(exc: BaseException) -> Problem | None:
    """The problem an exception stands for, or None when it is a bug (→ 500, logged)."""
    problem = refusal_problem(exc)
    if problem is not None:
        return problem
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return Problem("InvalidInput", 422, "the body is not valid JSON", "body")
        # The input itself is never echoed: it may hold an ID number or a signature.
        return Problem("InvalidInput", 422, str(first.get("msg")), field_path(first.get("loc", ())))
    if isinstance(exc, HTTPException) and exc.status_code == 400:  # a body that is not UTF-8
        return Problem("InvalidInput", 422, "the body is not valid UTF-8 JSON", "body")
    if isinstance(exc, HTTPException):
        rule = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return Problem(rule, exc.status_code, str(exc.detail))
    return None


def methods_at(scope: Scope) -> set[str] | None:
    """Every method some API route answers at this request's path (``api.http`` keeps the
    routes' patterns in ``app.state.route_methods``); None for an app that keeps none."""
    table = getattr(scope["app"].state, "route_methods", None)
    if table is None:
        return None
    path = scope["path"]
    return {m for pattern, methods in table if pattern.match(path) for m in methods}


INTERNAL = Problem("InternalError", 500, "unexpected error; it has been logged with the request id")


def problem_response(problem: Problem, request: Request | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    """The problem as problem+json; ``instance`` is the request's path with any ID number,
    bank account number or bearer token in it masked, as in the logs (an answer is cached,
    proxied and shown again where the caller's own input should not be)."""
    instance = mask_text(request.url.path) if request is not None else None
    return JSONResponse(problem.as_dict(instance), status_code=problem.status,
                        media_type=MEDIA_TYPE, headers=headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    problem = problem_from(exc) or INTERNAL
    request.state.problem = problem  # the access log line names the rule and field
    headers = getattr(exc, "headers", None) if isinstance(exc, (HTTPException, Refusal)) else None
    if problem.status == 405:
        headers = {**(headers or {}),
                   "Allow": ", ".join(sorted(methods_at(request.scope) or ()))}
    return problem_response(problem, request, headers)


def install(app: FastAPI) -> None:
    """Register the mapping on an app (the only exception handlers it has)."""
    for exc_type in (DomainError, Refusal, RecordConflictError, RequestValidationError,
                     HTTPException):
        app.add_exception_handler(exc_type, _handle)


PROBLEM_EXAMPLE = {
    "type": TYPE_BASE + "SignatureInvalid",
    "title": "SignatureInvalid",
    "status": 403,
    "detail": "preparer signature of official acc does not verify over the canonical content "
              "of Household.Applied",
    "rule": "SignatureInvalid",
    "field": "signatures[0].signature",
    "instance": "/commands",
}
