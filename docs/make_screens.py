"""Render every screen of the console (检查台) to PNG in docs/screens/ (``make screens``).

Builds the small demo county with planted misconduct in a scratch SQLite store, serves it
on a loopback port, signs in as an inspector (and a fund officer) and takes each screen at
1366×768 with Debian's Chromium driven by Playwright — the browser the tests use.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screens"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# (file name, path or a list page and the first link on it to follow, role)
SHOTS = [
    ("01-login", "/console/login", None),
    ("02-overview", "/console/", "inspector"),
    ("03-flags", "/console/flags", "inspector"),
    ("04-flag", ("/console/flags?severity=high", "a[href^='/console/flags/']"), "inspector"),
    ("05-households", "/console/households", "inspector"),
    ("06-village", "/console/households?village=990121101201", "inspector"),
    ("06-household", ("/console/households?village=990121101205",
                      "td a[href^='/console/households/']"), "inspector"),
    ("07-money", "/console/money", "fund_officer"),
    ("08-money-account", ("/console/money", "a[href^='/console/money/accounts/']"),
     "fund_officer"),
    ("09-officials", "/console/officials", "inspector"),
    ("10-official", ("/console/officials", "a[href^='/console/officials/']"), "inspector"),
    ("11-cases", "/console/cases", "inspector"),
    ("12-case", ("/console/cases", "td a[href^='/console/cases/']"), "inspector"),
    ("13-replay", "/console/replay", "reviewer"),
    ("14-log", "/console/log", "reviewer"),
    ("15-exports", "/console/exports", "inspector"),
    ("16-imports", "/console/imports", "fund_officer"),
    ("17-drafts", "/console/drafts", "fund_officer"),
    ("18-compare", "/console/compare", "inspector"),
    ("19-leads", "/console/leads", "inspector"),
]


def main() -> None:
    import pyotp
    import uvicorn
    from playwright.sync_api import sync_playwright

    from access.roles import ApiRole
    from api.http import create_app
    from demo.build import build_demo
    from store.settings import Settings, build_app

    scratch = Path(tempfile.mkdtemp(prefix="zhuisu-screens-"))
    settings = Settings(database_url=f"sqlite:///{scratch}/z.db",
                        id_pepper_file=scratch / "pepper", log_key_file=scratch / "log-key",
                        admin_token_file=scratch / "admin-token")
    app = build_app(settings)
    print("building the small demo county …", flush=True)
    build_demo(app, size="small", plant=1)
    api = create_app(settings, zhuisu=app, bootstrap_admin=False)
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    from audit import log as audit_log

    audit_log.make_checkpoint(api.state.audit)  # so 一户一档 shows verified inclusion marks
    base = f"http://127.0.0.1:{port}"
    county = app.region("990121", "region")
    people = {}
    for role in ("inspector", "fund_officer", "reviewer"):
        new = api.state.accounts.create(f"screens-{role.replace('_', '-')}",
                                        {"inspector": "县纪委 王检查", "fund_officer": "县财政局 李会计",
                                         "reviewer": "第三方评估 赵评估"}[role],
                                        ApiRole(role), county, created_by="make screens",
                                        now=dt.datetime.now(dt.UTC))
        people[role] = new
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        contexts = {}

        def page_for(role: str | None):
            if role not in contexts:
                context = browser.new_context(viewport={"width": 1366, "height": 768},
                                              locale="zh-CN")
                page = context.new_page()
                if role:
                    new = people[role]
                    page.goto(base + "/console/login")
                    page.fill("#username", new.account.username)
                    page.fill("#password", new.password)
                    page.fill("#code", pyotp.TOTP(new.totp_secret).now())
                    page.click("form[action='/console/login'] button[type=submit]")
                    page.wait_for_load_state("networkidle")
                contexts[role] = page
            return contexts[role]

        # a case to show: an inspector opens one from two flags (if the case screen is there)
        for name, target, role in SHOTS:
            page = page_for(role)
            if isinstance(target, tuple):
                page.goto(base + target[0])
                link = page.locator(target[1]).first
                if link.count() == 0:
                    print(f"skipped {name}: no link {target[1]} on {target[0]}")
                    continue
                href = link.get_attribute("href")
                page.goto(base + href)
            else:
                page.goto(base + target)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(400)  # charts animate in
            path = OUT / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"{path.relative_to(ROOT)}  {page.title()}")
        browser.close()
    server.should_exit = True
    thread.join(timeout=10)
    app.close()


if __name__ == "__main__":
    main()
