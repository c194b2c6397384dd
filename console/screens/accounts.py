"""账号管理 (administrators): people's accounts — list, create (the password and the TOTP
secret shown once), disable, unlock."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from access.roles import Action, ApiRole
from console.web import (
    ConsoleRoute,
    Person,
    accounts_of,
    check_csrf,
    may,
    now,
    page,
    redirect,
    zhuisu,
)
from domain.errors import DomainError

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, person: Person) -> HTMLResponse:
    may(person, Action.ADMINISTER)
    return page(request, "accounts.html", person, accounts=accounts_of(request).list(),
                roles=[r.value for r in ApiRole], created=None, error=None, form={})


@router.post("/accounts", response_class=HTMLResponse)
async def create_account(request: Request, person: Person) -> HTMLResponse:
    may(person, Action.ADMINISTER)
    form = await check_csrf(request, person)
    people = accounts_of(request)
    created, error = None, None
    try:
        region = (zhuisu(request).region(str(form["region"]).strip(), "region")
                  if str(form.get("region", "")).strip() else None)
        created = await run_in_threadpool(
            people.create, str(form.get("username", "")), str(form.get("name", "")),
            str(form.get("role", "")), region, created_by=person.account.username, now=now())
    except DomainError as exc:
        error = exc
    response = page(request, "accounts.html", person, accounts=people.list(),
                    roles=[r.value for r in ApiRole], created=created, error=error,
                    form=form if error else {})
    response.headers["Cache-Control"] = "no-store"  # the password is on this page, once
    if error is not None:
        response.status_code = error.status
    return response


@router.post("/accounts/{username}/disable")
async def disable_account(request: Request, person: Person, username: str) -> Response:
    may(person, Action.ADMINISTER)
    await check_csrf(request, person)
    await run_in_threadpool(accounts_of(request).disable, username)
    return redirect("/console/accounts")


@router.post("/accounts/{username}/unlock")
async def unlock_account(request: Request, person: Person, username: str) -> Response:
    may(person, Action.ADMINISTER)
    await check_csrf(request, person)
    await run_in_threadpool(accounts_of(request).unlock, username)
    return redirect("/console/accounts")
