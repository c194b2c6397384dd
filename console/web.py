"""The console's plumbing: templates, the signed-in person, CSRF, the access log, pages.

Every screen is a server-rendered page (Jinja2) under ``/console/`` (``/`` leads there); partial updates use htmx; charts
ECharts.  Every script, style and font is served from ``/static`` by zhuisu itself
(``static/vendor``), so the console works on an intranet without internet.

A screen declares ``person: Person``: the signed-in person's session (cookie
``zhuisu_session``), or a redirect to the sign-in page.  ``person.principal`` is an
``access.roles.Principal`` like a token's, so the same role × jurisdiction table as the HTTP
API decides what the person may see; ``may`` and ``covers`` check it and raise the same
refusals, shown as a Chinese error page.  Every form carries the session's CSRF token
(``csrf_field``) and every POST is checked (``check_csrf``).  ``record`` writes reads of
personal or money data to the access log exactly as the API does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sqlalchemy import Engine

from access.accounts import Accounts, Session
from access.errors import OutsideJurisdiction, Refusal, RoleNotPermitted
from access.reads import Read
from access.roles import Action, Principal, check_covers, check_may
from console.format import FILTERS
from domain.application import Zhuisu
from domain.errors import DomainError
from exchange.labels import (
    POSITION_ZH,
    PURPOSE_ZH,
    RULE_ZH,
    SEVERITY_ZH,
    SIGN_ROLE_ZH,
    STEP_ZH,
)
from projections import runner
from store.engines import engine_for
from store.urls import database_url_of

HERE = Path(__file__).parent
F = TypeVar("F", bound=Callable[..., Any])
COOKIE = "zhuisu_session"
PRE_CSRF = "zhuisu_csrf"  # the sign-in form's double-submit token (before any session)

ROLE_ZH = {"fund_officer": "资金会计", "village_official": "村干部", "township_reviewer": "乡镇审核",
           "county_approver": "县级审批", "inspector": "纪检监察", "reviewer": "评估复核",
           "admin": "系统管理员"}
STATUS_ZH = {"applied": "已申请", "in_identification": "识别中", "registered": "在册",
             "exiting": "退出中", "exited": "已脱贫", "removed": "已清退", "rejected": "未纳入",
             "relapsed": "返贫"}
LEVEL_ZH = {"province": "省", "city": "市", "county": "县", "township": "乡镇", "village": "村"}
RESPONSIBILITY_ZH = {"first": "第一责任", "leading": "领导责任", "handling": "经办责任",
                     "direct": "直接责任", "supervisory": "监管责任"}

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(FILTERS)
templates.env.globals.update(ROLE_ZH=ROLE_ZH, STATUS_ZH=STATUS_ZH, SEVERITY_ZH=SEVERITY_ZH,
                             SIGN_ROLE_ZH=SIGN_ROLE_ZH, LEVEL_ZH=LEVEL_ZH, RULES=RULE_ZH,
                             POSITION_ZH=POSITION_ZH, PURPOSE_ZH=PURPOSE_ZH,
                             RESPONSIBILITY_ZH=RESPONSIBILITY_ZH, STEP_ZH=STEP_ZH)

# the screens of the navigation bar: (path, title, roles that see it; None: every role)
PREFIX = "/console"
NAV = [("/console/", "总览", None), ("/console/flags", "问题线索", None),
       ("/console/households", "一户一档", None), ("/console/money", "资金流向", None),
       ("/console/officials", "干部", None), ("/console/cases", "案件", {"inspector", "admin"}),
       ("/console/replay", "回放", None), ("/console/log", "日志", None),
       ("/console/exports", "台账", None),
       ("/console/compare", "大数据比对", None), ("/console/leads", "线索处置", None),
       ("/console/imports", "导入", {"fund_officer", "county_approver"}),
       ("/console/drafts", "签字队列", {"fund_officer", "village_official", "township_reviewer",
                                    "county_approver"}),
       ("/console/accounts", "账号", {"admin"})]


class SignInNeeded(Exception):
    """No live session: the page answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str):
        self.next_path = next_path


def accounts_of(request: Request) -> Accounts:
    return request.app.state.accounts


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _person(request: Request) -> Session:
    from starlette.concurrency import run_in_threadpool

    cookie = request.cookies.get(COOKIE, "")
    session = await run_in_threadpool(accounts_of(request).session, cookie, now()) \
        if cookie else None
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target)
    request.state.person = session
    return session


def public(endpoint: F) -> F:
    """Mark a page that needs no session (sign-in); the API's check reads the same mark."""
    endpoint.__zhuisu_public__ = True  # type: ignore[attr-defined]
    return endpoint


def signed_in(session: Annotated[Session, Depends(_person)]) -> Session:
    """The guard every screen declares (``api.http`` refuses unguarded routes)."""
    return session


Person = Annotated[Session, Depends(signed_in)]


def zhuisu(request: Request) -> Zhuisu:
    return request.app.state.zhuisu


def read_models(request: Request) -> Engine:
    """The read models, caught up with the log first, as the API reads them."""
    app = zhuisu(request)
    runner.catch_up(app)
    return engine_for(database_url_of(app))


def may(person: Session, action: Action) -> None:
    check_may(person.account.principal, action)


def covers(person: Session, region_path: Mapping[str, str], what: str,
           field: str | None = None) -> None:
    check_covers(person.account.principal, region_path, what, field)


def record(request: Request, person: Session | Principal, reads: Iterable[Read]) -> None:
    """Add reads of personal or money data to the access log, as the API does."""
    principal = person.account.principal if isinstance(person, Session) else person
    shown = list(reads)
    if not shown:
        return
    route = getattr(request.scope.get("route"), "path", request.url.path)
    request.app.state.access_log.record(
        principal, shown, method=request.method, route=route,
        request_id=request.scope.get("state", {}).get("request_id"), now=now())


def csrf_field(session: Session) -> Markup:
    return Markup(f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">')


async def check_csrf(request: Request, session: Session) -> dict[str, Any]:
    """The form of a POST, if it carries the session's CSRF token; else a refusal."""
    import secrets

    form = await request.form()
    token = str(form.get("csrf", ""))
    if not token or not secrets.compare_digest(token, session.csrf):
        raise CsrfRefused("表单已过期或来源不明，请刷新页面后重试 (CSRF token missing or wrong)",
                          field="csrf")
    return {k: form.getlist(k) if len(form.getlist(k)) > 1 else v for k, v in form.items()}


class CsrfRefused(Refusal):
    """A form posted without the session's CSRF token."""


def page(request: Request, template: str, person: Session | None, **context: Any) -> HTMLResponse:
    """A screen: the template with the person, the navigation and the context."""
    nav = [(path, title) for path, title, roles in NAV
           if person is not None and (roles is None or person.account.role.value in roles)]
    return templates.TemplateResponse(request, template, {
        "person": person, "nav": nav, "csrf": csrf_field(person) if person else "",
        "path": request.url.path, **context})


REFUSAL_ZH = {
    "OutsideJurisdiction": "超出您的管辖范围",
    "RoleNotPermitted": "您的角色无权进行此操作",
    "NotFound": "未找到",
    "InvalidInput": "输入有误",
    "CsrfRefused": "表单校验失败",
    "NotInLog": "日志中没有该位置",
    "IntegrityAlarm": "日志完整性告警：系统已停止服务该数据",
    "ConcurrentWrite": "有人同时修改了同一记录，请重试",
    "PayloadTooLarge": "提交内容过大",
}


def refusal_page(request: Request, exc: DomainError | Refusal) -> HTMLResponse:
    person = getattr(request.state, "person", None)
    title = REFUSAL_ZH.get(exc.rule, "操作被拒绝")
    response = page(request, "refused.html", person, title=title, rule=exc.rule,
                    field=exc.field, message=exc.message)
    response.status_code = exc.status
    return response


class ConsoleRoute(APIRoute):
    """A console page: a refusal (domain rule, role, jurisdiction, CSRF) is shown as a page
    in Chinese with the rule and the field, with the refusal's status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (DomainError, Refusal) as exc:
                return refusal_page(request, exc)

        return handle


def redirect(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


__all__ = ["COOKIE", "NAV", "Person", "RoleNotPermitted", "OutsideJurisdiction", "page",
           "record", "read_models", "zhuisu", "may", "covers", "check_csrf", "redirect"]
