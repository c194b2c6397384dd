"""The HTTP app: the routers of ``api.routes``, guarded, logged, idempotent.

Cross-cutting concerns are written once: refusals become problem details in
``api.problems``; who the caller is and what they may do are the dependencies of
``api.deps`` (with the table in ``access.roles``); idempotency keys are the middleware of
``api.idempotency``; the request id, the caller and one log line per request are
``api.middleware``'s; a body over ``ZHUISU_MAX_BODY_BYTES`` is refused, unread, by
``api.limits``, before authentication.  The lifespan builds the store (and, on request,
seeds the small demo and writes a first administrator's token).  ``uvicorn --factory api.http:create_app``
serves it with settings from the environment; ``zhuisu serve`` does the same and
configures logging first.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api import problems
import console
from access.accounts import Accounts, demo_accounts
from access.reads import AccessLog
from console.web import signed_in
from access.tables import open_engine
from api.deps import authenticated, is_public, principal_of
from projections.directory import Directory
from runtime.followers import Followers, FollowerSettings, FollowWrites
from api.idempotency import IdempotencyMiddleware, IdempotencyRecords
from runtime.logging import configure_logging, get_logger
from api.limits import BodyLimit
from exchange.imports import upload_limit
from api.middleware import RequestContext
from api.routes import routers
from store.settings import Settings, build_app, utc_now
from store.urls import database_url_of
from access.tokens import Tokens, ensure_admin_token
from audit.store import AuditConfig, AuditStore
from domain.application import Zhuisu

log = get_logger("zhuisu.http")


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def create_app(settings: Settings | None = None, zhuisu: Zhuisu | None = None, *,
               seed: Callable[[Zhuisu], None] | None = None,
               bootstrap_admin: bool | None = None) -> FastAPI:
    """The HTTP app.  Pass ``zhuisu`` to serve an existing application (tests); otherwise
    the lifespan builds one from ``settings`` (default: the environment) and closes it.
    The API's tables go in the same database as the application's events.

    ``seed`` runs on the application before the followers catch up (``zhuisu serve`` loads
    the small demo into an empty store with it); ``bootstrap_admin`` (default: env
    ``ZHUISU_BOOTSTRAP_ADMIN``, false) writes an administrator's token to
    ``settings.admin_token_file`` when the store has no live one.
    """
    s = settings or Settings.from_env()
    if not structlog.is_configured():  # served without the CLI (uvicorn --factory …)
        configure_logging(s.log_format, s.log_level)  # never structlog's default: it
        # renders tracebacks with their local variables, which hold headers and bodies
    bootstrap = (env_flag("ZHUISU_BOOTSTRAP_ADMIN", False) if bootstrap_admin is None
                 else bootstrap_admin)
    following = FollowerSettings.from_env()  # receipts and the sweep (runtime.followers)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        app = zhuisu or await run_in_threadpool(build_app, s)
        engine = None
        try:
            url = database_url_of(app) if zhuisu is not None else s.database_url
            engine = await run_in_threadpool(open_engine, url)
            api.state.zhuisu = app
            api.state.tokens = Tokens(engine)
            api.state.access_log = AccessLog(engine)
            api.state.accounts = Accounts(engine)
            api.state.idempotency = IdempotencyRecords(
                engine, dt.timedelta(days=s.idempotency_days))
            api.state.directory = Directory()
            api.state.audit = AuditStore(AuditConfig(url, s.log_key_file, s.log_origin))
            followers = api.state.followers = Followers(app, api.state.audit, following)
            if seed is not None:
                await run_in_threadpool(seed, app)
            await run_in_threadpool(followers.catch_up)
            if seed is not None:  # a demo: one console account per role, written once
                await run_in_threadpool(_demo_accounts, api, app, s)
            followers.start_checkpoints(s.checkpoint_every)
            followers.start_sweep()  # ZHUISU_SWEEP_EVERY, ZHUISU_SWEEP_PAGES
            if bootstrap:
                path = await run_in_threadpool(ensure_admin_token, api.state.tokens,
                                               s.admin_token_file, utc_now())
                if path is not None:
                    log.warning("no administrator's token existed: one was written to the "
                                "file (mode 0600); send it as Authorization: Bearer <token>",
                                file=str(path))
            yield
        finally:
            if getattr(api.state, "followers", None) is not None:
                api.state.followers.stop()
                api.state.audit.close()
            if engine is not None:
                engine.dispose()
            if zhuisu is None:
                app.close()

    docs = s.public_docs
    api = FastAPI(
        title="追溯 zhuisu",
        summary="Event-sourced audit of poverty-alleviation households and funds",
        description=(
            "Every step is a signed event.  Every endpoint but `/health` and "
            "`/log/public-key` needs a bearer token, issued for one role and one region "
            "subtree (`zhuisu token create`); "
            "what each role may do is the table of `access/roles.py`.  Writes accept an "
            "`Idempotency-Key`.  Refusals are RFC 9457 problem details naming the rule "
            "and the field."),
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served offline by console.install (vendored Swagger UI)
        redoc_url=None,  # ReDoc would load from a CDN: not on an intranet
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    problems.install(api)
    api.add_middleware(FollowWrites)
    api.add_middleware(IdempotencyMiddleware, authenticate=principal_of, clock=utc_now)
    api.add_middleware(BodyLimit, max_bytes=s.max_body_bytes,  # before anything reads a body
                       uploads=dict.fromkeys(("/imports/", "/console/imports"), upload_limit()))
    api.add_middleware(RequestContext)
    for router in routers():
        api.include_router(router)
    console.install(api, docs=docs)
    check_every_route_is_guarded(api)
    api.state.route_methods = [(route.path_regex, frozenset(route.methods))
                               for route in api_routes(api.routes)]  # problems.methods_at
    api.openapi = problem_openapi(api)  # type: ignore[method-assign]
    return api


def _demo_accounts(api: FastAPI, app: Zhuisu, s: Settings) -> None:
    """After loading the demo: console accounts per role for its county (mode 0600 file)."""
    from sqlalchemy import select

    from projections import register as reg
    from store.engines import engine_for as read_engine

    with read_engine(database_url_of(app)).connect() as conn:
        county = conn.execute(select(reg.regions.c.code).where(reg.regions.c.level == "county")
                              .order_by(reg.regions.c.code).limit(1)).scalar()
    if county is None:
        return
    path = demo_accounts(api.state.accounts, app.region(county, "region"),
                         s.admin_token_file.parent / "demo-accounts.txt", utc_now())
    if path is not None:
        log.warning("demo console accounts, one per role, were written to the file (mode "
                    "0600): sign in at /console/ with a user name, its password and the "
                    "code of `zhuisu account code USERNAME`", file=str(path))


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers and mounts (however FastAPI keeps them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(getattr(route, "original_router", None), "routes", None)
        if nested is None and not isinstance(route, APIRoute):
            nested = getattr(route, "routes", None)
        yield from api_routes(nested or ())


def check_every_route_is_guarded(api: FastAPI) -> None:
    """Fail closed: a route must declare a guard of ``api.deps`` (on the route itself) or be
    marked ``@public``."""
    for route in api_routes(api.routes):
        if (not is_public(route.endpoint)
                and not _depends_on(route.dependant, authenticated)
                and not _depends_on(route.dependant, signed_in)):
            raise RuntimeError(f"{sorted(route.methods)} {route.path} declares neither a guard "
                               "(Reader, Submitter, Admin, … of api.deps) nor @public")


_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def problem_openapi(api: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with every 4xx/5xx answer as problem+json (``ProblemOut``)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = FastAPI.openapi(api)
        problem = {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for code, answer in operation.get("responses", {}).items():
                    if code[:1] in ("4", "5") and code != "503":
                        answer["content"] = {problems.MEDIA_TYPE: problem}
                        if code == "422" and answer.get("description") == "Validation Error":
                            answer["description"] = "invalid input (InvalidInput), naming the field"
        components = schema.get("components", {}).get("schemas", {})
        for name in _FASTAPI_VALIDATION:
            components.pop(name, None)
        api.openapi_schema = schema
        return schema

    return openapi
