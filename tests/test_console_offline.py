"""The console and /docs work on an intranet without internet: no page, style sheet or script
refers to another host, and every asset a page names is served by zhuisu itself."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from access.accounts import Accounts
from api.http import create_app
from console import STATIC
from console.web import NAV
from factories import a_county_world

ATTRIBUTE = re.compile(r"""\b(?:src|href|action|data-src|poster)\s*=\s*["']([^"']*)["']""", re.I)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""", re.I)
LOCAL = re.compile(r"^(/(?!/)|#|data:|javascript:history|\?|$)")


def outside_references(html: str) -> list[str]:
    found = [u for u in ATTRIBUTE.findall(html) if not LOCAL.match(u.strip())]
    found += [u for u in CSS_URL.findall(html) if not LOCAL.match(u.strip())]
    found += re.findall(r"@import\s+[\"']?(https?:)?//[^\"';]+", html)
    return found


def test_the_check_sees_outside_references() -> None:
    assert outside_references('<script src="https://cdn.example/x.js"></script>') == [
        "https://cdn.example/x.js"]
    assert outside_references('<link href="//fonts.example/css">') == ["//fonts.example/css"]
    assert outside_references('<div style="background:url(http://x/y.png)">') == [
        "http://x/y.png"]
    assert outside_references('<a href="/console/flags?x=1">x</a><img src="data:,">') == []


@pytest.fixture
def signed_in(app: Any) -> Any:
    a_county_world(app)
    api = create_app(zhuisu=app, bootstrap_admin=False)
    with TestClient(api) as client:
        people: Accounts = api.state.accounts
        new = people.create("offline-admin", "离线测试", "admin", None, created_by="test",
                            now=dt.datetime.now(dt.UTC))
        form = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        answer = client.post("/console/login", data={
            "username": "offline-admin", "password": new.password, "csrf": csrf,
            "code": pyotp.TOTP(new.totp_secret).now(), "next": "/console/"},
            follow_redirects=False)
        assert answer.status_code == 303, answer.text
        yield client


def test_no_page_refers_to_another_host(signed_in: TestClient) -> None:
    pages = ["/console/login", "/docs"] + [path for path, _, _ in NAV]
    seen_assets: set[str] = set()
    for path in pages:
        page = signed_in.get(path)
        assert page.status_code == 200, path
        assert outside_references(page.text) == [], path
        seen_assets |= {u for u in ATTRIBUTE.findall(page.text)
                        if u.startswith("/static/")}
    assert "/static/vendor/htmx.min.js" in seen_assets
    for asset in sorted(seen_assets):
        assert signed_in.get(asset).status_code == 200, asset


def test_the_style_sheets_and_scripts_load_nothing_from_elsewhere() -> None:
    for path in STATIC.rglob("*.css"):
        assert [u for u in CSS_URL.findall(path.read_text()) if not LOCAL.match(u)] == [], path
        assert "@import" not in path.read_text(), path
    for path in (STATIC / "js").rglob("*.js"):
        text = path.read_text()
        assert not re.search(r"""(fetch|import|src\s*=)\s*\(?\s*["'](https?:)?//""", text), path


def test_docs_are_served_offline(signed_in: TestClient) -> None:
    docs = signed_in.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert "cdn.jsdelivr.net" not in docs and "unpkg" not in docs
    assert signed_in.get("/redoc").status_code == 404  # ReDoc would need a CDN
