"""A live console for browser tests: the tiny demo county with planted misconduct, served
by uvicorn on a free loopback port, with one account per role and a Chromium to drive it.

``live_console`` (module scope, both stores) yields a ``Live``: its base URL, the app, and
``people[role]`` = (username, password, TOTP secret).  ``browser`` is Debian's Chromium
(``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright for Python, started
with the flags that keep it off the network; ``sign_in`` fills the real form.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest

CHROMIUM = os.environ.get("ZHUISU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-features=Translate,MediaRouter", "--lang=zh-CN"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
COUNTY = "990121"
NEIGHBOUR = "990122"  # a county beside the demo's: its people see nothing of 990121
ROLES = ("inspector", "reviewer", "fund_officer", "admin")
LOCAL = re.compile(r"^(https?://(127\.0\.0\.1|localhost)(:\d+)?/|data:|blob:|about:)")


@dataclass
class Live:
    base: str
    app: Any
    api: Any
    people: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)  # role → signed-in browser state

    def code(self, role: str) -> str:
        return pyotp.TOTP(self.people[role][2]).now()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_people(live: Live) -> None:
    from access.accounts import Accounts
    from domain.errors import AlreadyExists

    people: Accounts = live.api.state.accounts
    now = dt.datetime.now(dt.UTC)
    county = live.app.region(COUNTY, "region")
    for role in ROLES:
        new = people.create(f"t-{role.replace('_', '-')}", f"测试{role}", role,
                            None if role == "admin" else county, created_by="test", now=now)
        live.people[role] = (new.account.username, new.password, new.totp_secret)
    try:
        live.app.create_region(NEIGHBOUR, "邻县", "county", "990100")
    except AlreadyExists:
        pass
    new = people.create("t-neighbour", "邻县检查", "inspector", live.app.region(NEIGHBOUR, "r"),
                        created_by="test", now=now)
    live.people["neighbour"] = (new.account.username, new.password, new.totp_secret)
    for name in ("t-locked", "t-wrong", "t-signin"):
        new = people.create(name, "登录测试", "inspector", county, created_by="test", now=now)
        live.people[name] = (new.account.username, new.password, new.totp_secret)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live_console(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    import uvicorn

    from api.http import create_app
    from conftest import Store
    from demo.build import build_demo

    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    store = Store(request.param, tmp_path_factory.mktemp(f"console-{request.param}"), server)
    try:
        app = store.new_app()
        build_demo(app, size="tiny", plant=1)
        api = create_app(zhuisu=app, bootstrap_admin=False)
        port = free_port()
        config = uvicorn.Config(api, host="127.0.0.1", port=port, log_config=None,
                                access_log=False, lifespan="on")
        uv = uvicorn.Server(config)
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not uv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.05)
        live = Live(f"http://127.0.0.1:{port}", app, api)
        make_people(live)
        try:
            yield live
        finally:
            uv.should_exit = True
            thread.join(timeout=15)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not at {CHROMIUM}: .ci/run installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watch:
    """What a page did that it must not: requests to other hosts, console errors."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def new_page(browser: Any, live: Live, role: str | None = None) -> tuple[Any, Watch]:
    """A page in a fresh context; with ``role``, already signed in as that role (one sign-in
    per role and module: a TOTP code is accepted once, so sessions are reused)."""
    if role is not None and role not in live.states:
        page, _ = new_page(browser, live)
        sign_in(page, live, role)
        assert "/console/login" not in page.url, f"{role} could not sign in"
        live.states[role] = page.context.storage_state()
        page.context.close()
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                  accept_downloads=True,
                                  storage_state=live.states.get(role) if role else None)
    page = context.new_page()
    watch = Watch()

    def route(r: Any) -> None:
        if LOCAL.match(r.request.url):
            r.continue_()
        else:
            watch.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    return page, watch


def sign_in(page: Any, live: Live, role: str, *, password: str | None = None,
            code: str | None = None, here: bool = False) -> None:
    """Sign in through the form (``here``: the sign-in page already shown, with its next)."""
    username, real_password, secret = live.people[role]
    if not here:
        page.goto(live.base + "/console/login")
    page.fill("#username", username)
    page.fill("#password", password if password is not None else real_password)
    page.fill("#code", code if code is not None else pyotp.TOTP(secret).now())
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_load_state("networkidle")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical accessibility violations of the page (axe-core, vendored)."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']}))"
                          ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
                          "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]
