"""The HTTP API: thin routes over ``Zhuisu`` (parse, call one verb, shape the answer).

Cross-cutting concerns are written once: refusals become problem details in
``api.problems``; the request id, the actor and one structured log line per request are
the middleware's; the store is built (and, on request, seeded with the small demo) in
the lifespan.  ``uvicorn --factory api.http:create_app`` serves it with settings from
the environment; ``zhuisu serve`` does the same and configures logging first.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import problems
from api.logging import bind_request, get_logger
from api.schemas import (
    AccountOut,
    CommandIn,
    CommandResult,
    HealthOut,
    HouseholdOut,
    OfficialOut,
    ProblemOut,
    StepOut,
)
from api.settings import Settings, build_app
from api.views import (
    EVENTS_PAGE,
    account_view,
    household_view,
    official_view,
    step_catalogue,
)
from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official

log = get_logger("zhuisu.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Where a recorded step's subject can be read back.
_LOCATIONS = {"Household": "/households/", "FundAccount": "/accounts/"}


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def get_zhuisu(request: Request) -> Zhuisu:
    return request.app.state.zhuisu


App = Annotated[Zhuisu, Depends(get_zhuisu)]
EventsAfter = Annotated[int, Query(ge=0, description="only events after this position")]
EventsLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many events")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemOut, "content": {problems.MEDIA_TYPE: {}}}
    for code in (403, 404, 409, 422)
}
PROBLEMS[403]["content"][problems.MEDIA_TYPE] = {"example": problems.PROBLEM_EXAMPLE}

router = APIRouter()


@router.get("/health", response_model=HealthOut, tags=["operations"])
def health(app: App) -> Any:
    store = type(app.recorder).__module__.rsplit(".", 1)[-1]  # eventsourcing.sqlite → sqlite
    try:
        events = app.recorder.max_notification_id() or 0
    except Exception:
        log.exception("health check: store unavailable", store=store)
        return JSONResponse({"status": "unavailable", "store": store, "events": None}, 503)
    return {"status": "ok", "store": store, "events": events}


@router.post("/commands", response_model=CommandResult, status_code=201, tags=["commands"],
             responses={200: {"model": CommandResult, "description": "an exact retry; nothing "
                              "new was stored"}, **PROBLEMS})
def post_command(command: CommandIn, app: App, response: Response,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    """Run one signed step.  201 when recorded; 200 when it repeats a recorded step."""
    result = app.execute(command.model_dump(mode="json"))
    response.status_code = 201 if result["recorded"] else 200
    if idempotency_key is not None:
        response.headers["Idempotency-Key"] = idempotency_key
    location = _LOCATIONS.get(result["step"].split(".", 1)[0])
    if location:
        response.headers["Location"] = location + result["subject"]
    return result


@router.get("/households/by-code/{code}", response_model=HouseholdOut, tags=["reads"],
            responses=PROBLEMS)
def get_household_by_code(code: str, app: App, events_after: EventsAfter = 0,
                          events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    household = app.load(Household, Household.create_id(code), "code")
    return household_view(app, household, events_after, events_limit)


@router.get("/households/{household_id}", response_model=HouseholdOut, tags=["reads"],
            responses=PROBLEMS)
def get_household(household_id: str, app: App, events_after: EventsAfter = 0,
                  events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    household = app.load(Household, household_id, "household_id")
    return household_view(app, household, events_after, events_limit)


@router.get("/accounts/{account_id}", response_model=AccountOut, tags=["reads"],
            responses=PROBLEMS)
def get_account(account_id: str, app: App, events_after: EventsAfter = 0,
                events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    account = app.load(FundAccount, account_id, "account_id")
    return account_view(app, account, events_after, events_limit)


@router.get("/officials/{official_id}", response_model=OfficialOut, tags=["reads"],
            responses=PROBLEMS)
def get_official(official_id: str, app: App) -> Any:
    return official_view(app.load(Official, official_id, "official_id"))


@router.get("/steps", response_model=dict[str, StepOut], tags=["commands"])
def get_steps() -> Any:
    """The step catalogue: each step's content fields and who signs it at which level."""
    return step_catalogue()


async def access_log(request: Request,
                     call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Request id in and out, and one structured line per request."""
    incoming = request.headers.get("x-request-id", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    # No authentication yet: every caller is anonymous; the signers answer for the steps.
    bind_request(request_id, actor="anonymous")
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.url.path)
        request.state.problem = problems.INTERNAL
        response = problems.problem_response(problems.INTERNAL, request)
    response.headers["X-Request-ID"] = request_id
    route = getattr(request.scope.get("route"), "path", None)
    problem = getattr(request.state, "problem", None)
    fields: dict[str, Any] = {
        "method": request.method, "route": route, "path": request.url.path,
        "status": response.status_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if problem is not None:
        fields.update(rule=problem.rule, field=problem.field, detail=problem.detail)
    level = "error" if response.status_code >= 500 else (
        "warning" if response.status_code >= 400 else "info")
    getattr(log, level)("request", **fields)
    return response


def load_demo_if_empty(app: Zhuisu) -> None:
    try:
        from api.demo import build_demo, store_is_empty  # imported only when asked for
    except ModuleNotFoundError as exc:
        if exc.name != "api.demo":
            raise
        log.warning("demo skipped: api.demo is not installed")
        return
    if not store_is_empty(app):
        log.info("demo skipped: the store already holds events")
        return
    log.info("loading the small demo into the empty store (the server starts after it)")
    summary = build_demo(app, size="small")
    log.info("demo loaded", households=summary.households, officials=summary.officials,
             events=summary.events_written, seconds=round(summary.seconds, 2))


def create_app(settings: Settings | None = None, zhuisu: Zhuisu | None = None, *,
               demo_on_empty: bool | None = None) -> FastAPI:
    """The HTTP app.  Pass ``zhuisu`` to serve an existing application (tests); otherwise
    the lifespan builds one from ``settings`` (default: the environment) and closes it.

    ``demo_on_empty`` (default: env ``ZHUISU_DEMO_ON_EMPTY``, false) loads the small demo
    into an empty store at start-up.
    """
    demo = env_flag("ZHUISU_DEMO_ON_EMPTY", False) if demo_on_empty is None else demo_on_empty

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        app = zhuisu or build_app(settings or Settings.from_env())
        try:
            if demo:
                await run_in_threadpool(load_demo_if_empty, app)
            api.state.zhuisu = app
            yield
        finally:
            if zhuisu is None:
                app.close()

    api = FastAPI(
        title="追溯 zhuisu",
        summary="Event-sourced audit of poverty-alleviation households and funds",
        description="Every step is a signed event.  Refusals are RFC 9457 problem details "
                    "naming the rule and the field.",
        version="0.1.0",
        lifespan=lifespan,
    )
    problems.install(api)
    api.middleware("http")(access_log)
    api.include_router(router)
    return api
