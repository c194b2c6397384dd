"""登录 / 退出: signing in with password and TOTP, signing out; every attempt access-logged."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from access.accounts import Session, SignInRefused
from access.reads import Read
from console.web import (
    COOKIE,
    PRE_CSRF,
    ConsoleRoute,
    Person,
    accounts_of,
    check_csrf,
    now,
    page,
    public,
    record,
    redirect,
)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@dataclass(frozen=True)
class _Role:
    value: str


@dataclass(frozen=True)
class Visitor:
    """Who tried to sign in, for the access log (no account may exist by that name)."""

    token_id: str
    name: str
    role: _Role


def _safe_next(target: str | None) -> str:
    target = target or "/console/"
    if not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


def _secure(request: Request) -> bool:
    return (request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto", "").lower() == "https")


def _login_page(request: Request, *, next_path: str, error: str | None = None,
                username: str | None = None, status: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", None, pre_csrf=token, next=next_path,
                    error=error, username=username)
    response.status_code = status
    response.set_cookie(PRE_CSRF, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/console/login")
    return response


@router.get("/login")
@public
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=_safe_next(next))


@router.post("/login")
@public
async def login(request: Request, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=200)],
                code: Annotated[str, Form(max_length=12)],
                csrf: Annotated[str, Form(max_length=100)] = "",
                next: Annotated[str, Form(max_length=500)] = "/console/") -> Response:
    expected = request.cookies.get(PRE_CSRF, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        return _login_page(request, next_path=_safe_next(next), username=username, status=400,
                           error="登录表单已过期，请重新输入 (form expired)")
    people = accounts_of(request)
    try:
        session: Session = await run_in_threadpool(people.sign_in, username, password, code,
                                                   now())
    except SignInRefused as exc:
        who = Visitor("sign-in", username[:100] or "-", _Role("-"))
        record(request, who, [Read("sign_in_failed", username[:64] or "-", {})])
        return _login_page(request, next_path=_safe_next(next), username=username,
                           error=exc.message.split(" (")[0], status=exc.status)
    record(request, session.account.principal,
           [Read("sign_in", session.account.username, {})])
    response = redirect(_safe_next(next))
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict",
                        secure=_secure(request), path="/")
    response.delete_cookie(PRE_CSRF, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, person: Person) -> Response:
    await check_csrf(request, person)
    await run_in_threadpool(accounts_of(request).sign_out, person.id)
    record(request, person, [Read("sign_out", person.account.username, {})])
    response = redirect("/console/login")
    response.delete_cookie(COOKIE, path="/")
    return response
