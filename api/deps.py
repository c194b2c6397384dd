"""What a route can declare it needs: the application, a caller allowed to act, a page.

Written once, used by every router:

* ``principal_of`` authenticates the bearer token (once per request, cached on the
  request; the idempotency middleware asks too) and binds the caller's name, role and
  token id — never the token — to every log line of the request;
* ``Reader``, ``Submitter``, ``Admin``, ``AccessLogReader`` are the guards of
  ``access.roles``: 401 without a live token, 403 ``RoleNotPermitted`` for a role that may
  not;
* ``region_within`` / ``check_covers`` confine a subject to the token's jurisdiction
  (403 ``OutsideJurisdiction``), ``record_reads`` writes the access log for audited
  readers, ``public`` marks the few routes that need no token (``create_app`` refuses to
  start with a route that is neither guarded nor public).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Annotated, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from structlog.contextvars import bind_contextvars

from access.reads import Read
from projections.directory import Directory
from api.idempotency import KEY_PATTERN
from api.problems import NotAuthenticated
from access.roles import Action, Principal, check_covers, check_may
from store.settings import utc_now
from domain.application import Zhuisu
from domain.errors import InvalidInput, NotFound
from domain.region import Region, RegionPath

F = TypeVar("F", bound=Callable[..., Any])
_UNSET = object()


async def get_zhuisu(request: Request) -> Zhuisu:
    # async, like every dependency here that does no I/O: no trip through the thread pool
    return request.app.state.zhuisu


App = Annotated[Zhuisu, Depends(get_zhuisu)]


def get_directory(request: Request, app: App) -> Directory:
    """The index of which aggregates exist where, caught up with the log."""
    directory: Directory = request.app.state.directory
    directory.catch_up(app)
    return directory


Dir = Annotated[Directory, Depends(get_directory)]


# authentication ---------------------------------------------------------------------
async def principal_of(request: Request) -> Principal | None:
    """The caller behind the request's bearer token, or None; looked up once per request."""
    state = request.scope.setdefault("state", {})
    cached = state.get("principal", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    principal = None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not scheme:
        state["auth_error"] = ("this endpoint needs a bearer token (Authorization: Bearer "
                               "<token>; an administrator makes one with zhuisu token create)")
    elif scheme.lower() != "bearer" or not token.strip():
        state["auth_error"] = "expected Authorization: Bearer <token>"
    else:
        principal = await run_in_threadpool(request.app.state.tokens.authenticate,
                                            token.strip())
        if principal is None:
            state["auth_error"] = "the bearer token is unknown or revoked"
    state["principal"] = principal
    if principal is not None:
        bind_contextvars(actor=principal.name, role=principal.role.value,
                         actor_id=principal.token_id)
    return principal


bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description=(
    "A token from `zhuisu token create --role … --region CODE --name …` (the first "
    "`zhuisu serve` writes an administrator's token to var/admin-token)."))


async def authenticated(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    principal = await principal_of(request)
    if principal is None:
        raise NotAuthenticated(request.scope["state"]["auth_error"])
    return principal


def public(endpoint: F) -> F:
    """Mark a route that answers without a token (health, the public log key)."""
    endpoint.__zhuisu_public__ = True  # type: ignore[attr-defined]
    return endpoint


def is_public(endpoint: Callable[..., Any]) -> bool:
    return getattr(endpoint, "__zhuisu_public__", False)


def _allowed(action: Action) -> Callable[..., Any]:
    async def guard(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        check_may(principal, action)
        return principal

    guard.__name__ = f"may_{action.value}"
    return guard


Reader = Annotated[Principal, Depends(_allowed(Action.READ))]
Submitter = Annotated[Principal, Depends(_allowed(Action.SUBMIT))]
Admin = Annotated[Principal, Depends(_allowed(Action.ADMINISTER))]
AccessLogReader = Annotated[Principal, Depends(_allowed(Action.READ_ACCESS_LOG))]
CaseWriter = Annotated[Principal, Depends(_allowed(Action.WRITE_CASES))]
SurveyWriter = Annotated[Principal, Depends(_allowed(Action.RECORD_SURVEYS))]


# jurisdiction and the access log -------------------------------------------------------
def region_path_of(app: Zhuisu, cls: type[Aggregate], aggregate_id: Any,
                   field: str) -> RegionPath:
    """The region path of an aggregate, read from the cached instance itself (no copy:
    only its region path, which never changes, is read)."""
    try:
        aid = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
    except ValueError as exc:
        raise InvalidInput("must be a UUID", field=field) from exc
    try:
        aggregate = app.repository.get(aid, deepcopy_from_cache=False)
    except AggregateNotFoundError as exc:
        raise NotFound(f"no {cls.__name__} {aid}", field=field) from exc
    if not isinstance(aggregate, cls):
        raise NotFound(f"{aid} is a {type(aggregate).__name__}, not a {cls.__name__}",
                       field=field)
    return dict(aggregate.region_path)


def region_within(principal: Principal, app: Zhuisu, code: str, field: str) -> Region:
    """The region ``code``, if it lies in the principal's jurisdiction."""
    region = app.region(code, field)
    check_covers(principal, region.path, f"region {code}", field)
    return region


def list_scope(principal: Principal, app: Zhuisu, region: str | None,
               field: str = "region") -> tuple[str | None, str | None]:
    """(level, code) of the subtree a list covers: ``region`` if given (and in the
    principal's jurisdiction), else the principal's own (None, None: every region)."""
    if region is None:
        return principal.region_level, principal.region_code
    found = region_within(principal, app, region, field)
    return found.level.value, found.code


RegionFilter = Annotated[str | None, Query(
    min_length=1, max_length=64,
    description="a region code: list only within its subtree (default: the token's own)")]


def record_reads(request: Request, principal: Principal, reads: Iterable[Read]) -> None:
    """Add the reads an audited reader makes to the access log (no-op for others)."""
    audited = [r for r in reads if principal.audited(r.kind)]
    if audited:
        route = getattr(request.scope.get("route"), "path", request.url.path)
        request.app.state.access_log.record(
            principal, audited, method=request.method, route=route,
            request_id=request.scope.get("state", {}).get("request_id"), now=utc_now())


def readable(request: Request, principal: Principal, kind: str, aggregate: Any,
             region_path: RegionPath, field: str) -> Any:
    """``aggregate`` if the principal may see it, its read recorded when audited."""
    check_covers(principal, region_path, f"{kind} {aggregate.id}", field)
    record_reads(request, principal, [Read(kind, str(aggregate.id), region_path)])
    return aggregate


# request parameters -------------------------------------------------------------------
@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int

    def of(self, items: Iterator[Any] | Iterable[Any]) -> tuple[list[Any], int | None]:
        """This page of ``items`` and the offset of the next page (None on the last)."""
        chunk = list(islice(items, self.offset, self.offset + self.limit + 1))
        more = len(chunk) > self.limit
        return chunk[:self.limit], (self.offset + self.limit if more else None)


async def page_params(limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
                offset: Annotated[int, Query(ge=0, le=1_000_000,
                                             description="items to skip")] = 0) -> PageParams:
    return PageParams(limit, offset)


Paging = Annotated[PageParams, Depends(page_params)]
EventsAfter = Annotated[int, Query(ge=0, le=2**31, description="only events after this position")]
EventsLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many events")]


async def idempotency_key(idempotency_key: Annotated[str | None, Header(
        pattern=KEY_PATTERN, description=(
            "Makes a retry safe: the same key again returns the first answer and writes "
            "nothing more; the same key with a different request is refused (422)."),
        examples=["3f1c2a9e-disbursement-2025-03-01-0001"])] = None) -> str | None:
    """Documents the header; ``api.idempotency`` does the work for every write."""
    return idempotency_key


IdempotentWrite = Depends(idempotency_key)
