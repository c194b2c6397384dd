"""检查台: the web console for inspectors, fund officers and reviewers, in Chinese.

Server-rendered pages (Jinja2, htmx for partial updates, ECharts for charts) served by
``zhuisu serve`` itself, under ``/console/`` (``/`` leads there); every script, style sheet
and font is vendored in ``static/`` and served by the app, so the console works on a
government intranet without internet.  People sign in with a password and a TOTP code
(``access.accounts``); what each may see is decided by the same role × jurisdiction table as
the API (``access.roles``), and every read of personal or money data goes to the same
access log (``access.reads``).

======================================================  ===============================
plumbing: templates, the signed-in person, CSRF, pages   ``web``
Chinese conventions: 元, 万元, dates, masking             ``format``
登录 / 退出                                               ``screens.auth``
总览                                                     ``screens.overview``
问题线索 (list, filters, Excel, evidence)                 ``screens.flags``
台账 (the ledgers offices file, Excel and CSV)             ``screens.exports``
one module per further screen                            ``screens.<screen>``
mounting it all on the HTTP app; offline ``/docs``       ``install``
======================================================  ===============================

May import: ``domain``, ``store``, ``audit``, ``inspection``, ``projections``, ``runtime``,
``access`` and ``exchange`` (the ledgers of the 台账 screen).  Imported only by ``api.http``,
which mounts it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from urllib.parse import quote

STATIC = Path(__file__).parent / "static"


def install(api: FastAPI, *, docs: bool = True) -> None:
    """Mount the console, its static files, ``/`` and (if ``docs``) an offline ``/docs``."""
    from console.screens import routers
    from console.web import SignInNeeded, public

    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in routers():
        api.include_router(router)

    @api.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> RedirectResponse:
        return RedirectResponse(f"/console/login?next={quote(exc.next_path, safe='/')}",
                                status_code=303)

    @api.get("/", include_in_schema=False)
    @public
    async def _home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    if docs:
        @api.get("/docs", include_in_schema=False)
        @public
        async def _docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url="/openapi.json", title="追溯 zhuisu API",
                swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
                swagger_ui_parameters={"persistAuthorization": True})
