"""What a route can declare it needs: the application, a caller allowed to act, a page.

Written once, used by every router:

* ``principal_of`` authenticates the bearer token (once per request, cached on the
  request; the idempotency middleware asks too) and binds the caller's name, role and
  token id — never the token — to every log line of the request;
* ``Reader``, ``Submitter``, ``Admin``, ``AccessLogReader`` are the guards of
  ``access.roles``: 401 without a live token, 403 ``RoleNotPermitted`` for a role that may
  not;
* ``region_within`` / ``check_covers`` confine a subject to the token's jurisdiction
  (403 ``OutsideJurisdiction``); ``public`` marks the few routes that need no token
  (``create_app`` refuses to start with a route that is neither guarded nor public);
* who looked at what: a route names each subject it shows (``record_reads``: a
  household, account, project, official, case, flag, region's figures, or a log record's
  subject), whatever the caller's role (``access.roles.AUDITED_READERS``).  The ``Reader``
  guard collects them during the request and, once the route has made its answer and
  before a byte of it is sent, writes them to the access log in one batched insert, one
  row per subject (a failed insert fails the request: nothing is shown unrecorded).
  ``subject_of`` says what kind of subject an aggregate is and where it lies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
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
from domain.case import Case
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from domain.project import Project
from projections.directory import Directory
from api.idempotency import KEY_PATTERN
from api.problems import NotAuthenticated
from access.roles import Action, Principal, check_covers, check_may
from store.settings import utc_now
from domain.application import Zhuisu
from domain.errors import InvalidInput, NotFound
from domain.region import Region, RegionPath, Unit

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


_READS = "reads_shown"  # request state: the subjects a route shows, recorded at its end


async def may_read(request: Request, principal: Annotated[Principal, Depends(authenticated)]
                   ) -> AsyncIterator[Principal]:
    """The ``Reader`` guard: a principal that may read; the subjects the route names
    (``record_reads``) go to the access log when it has made its answer, before it is
    sent (``scope="function"``), in one insert.  A route that fails records nothing."""
    check_may(principal, Action.READ)
    pending: list[Read] = []
    request.scope.setdefault("state", {})[_READS] = pending
    yield principal
    if pending:
        await run_in_threadpool(_write_reads, request, principal, pending)


Reader = Annotated[Principal, Depends(may_read, scope="function")]
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
    """Name subjects the route shows: recorded at the end of a ``Reader``'s request (at
    once anywhere else), one row per subject, for every role ``AUDITED_READERS`` holds."""
    audited = [r for r in reads if principal.audited(r.kind)]
    if not audited:
        return
    pending = request.scope.get("state", {}).get(_READS)
    if pending is not None:
        pending.extend(audited)
    else:
        _write_reads(request, principal, audited)


def _write_reads(request: Request, principal: Principal, reads: list[Read]) -> None:
    unique = list({(r.kind, r.id): r for r in reads}.values())
    route = getattr(request.scope.get("route"), "path", request.url.path)
    request.app.state.access_log.record(
        principal, unique, method=request.method, route=route,
        request_id=request.scope.get("state", {}).get("request_id"), now=utc_now())


# what a subject is and where it lies ---------------------------------------------------
SUBJECT_KINDS: tuple[tuple[type[Aggregate], str], ...] = (
    (Household, "household"), (FundAccount, "account"), (Project, "project"),
    (Official, "official"), (Case, "case"), (Region, "region"), (Unit, "unit"))


def region_path_at(app: Zhuisu, code: str) -> RegionPath:
    """The path of region ``code`` ({} if there is none), read from the cached instance."""
    try:
        region = app.repository.get(Region.create_id(code), deepcopy_from_cache=False)
    except AggregateNotFoundError:
        return {}
    return dict(region.path) if isinstance(region, Region) else {}


def subject_of(app: Zhuisu, aggregate: Aggregate) -> Read:
    """What kind of subject an aggregate is and where it lies: a household's village, an
    account's or project's region, a case's region, an official's or unit's region (its
    unit's), a region itself ({}: an aggregate of no region)."""
    kind = next((k for cls, k in SUBJECT_KINDS if isinstance(aggregate, cls)),
                type(aggregate).__name__.lower())
    if isinstance(aggregate, Region):
        return Read(kind, aggregate.code, dict(aggregate.path))
    if isinstance(aggregate, (Official, Unit)):
        return Read(kind, str(aggregate.id), region_path_at(app, aggregate.region_code))
    return Read(kind, str(aggregate.id), dict(getattr(aggregate, "region_path", {}) or {}))


def any_aggregate(app: Zhuisu, aggregate_id: Any, field: str) -> Aggregate:
    """Any aggregate by id, from the cache when it is there (not to be changed)."""
    try:
        aid = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
    except ValueError as exc:
        raise InvalidInput("must be a UUID", field=field) from exc
    try:
        return app.repository.get(aid, deepcopy_from_cache=False)
    except AggregateNotFoundError as exc:
        raise NotFound(f"no aggregate {aid}", field=field) from exc


def payee_reads(app: Zhuisu, movements: Iterable[Mapping[str, Any]]) -> list[Read]:
    """The households and projects paid in these movements (the fields of a page of
    events, a trace's payees), each once."""
    paid = [m for m in movements if m.get("payee_id")]
    return [*reads_of(app, Household, [m["payee_id"] for m in paid
                                       if m.get("payee_kind") == "household"]),
            *reads_of(app, Project, [m["payee_id"] for m in paid
                                     if m.get("payee_kind") == "project"])]


def reads_of(app: Zhuisu, cls: type[Aggregate], ids: Iterable[Any]) -> list[Read]:
    """The subjects of these ids (each once; an id that is not a ``cls`` is skipped)."""
    out = []
    for aid in dict.fromkeys(str(i) for i in ids if i):
        try:
            aggregate = any_aggregate(app, aid, "id")
        except (InvalidInput, NotFound):
            continue
        if isinstance(aggregate, cls):
            out.append(subject_of(app, aggregate))
    return out


def readable(request: Request, principal: Principal, kind: str, aggregate: Any,
             region_path: RegionPath, field: str) -> Any:
    """``aggregate`` if the principal may see it, its read recorded when audited."""
    check_covers(principal, region_path, f"{kind} {aggregate.id}", field)
    record_reads(request, principal, [Read(kind, str(aggregate.id), dict(region_path))])
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
