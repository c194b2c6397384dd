"""The console in a real browser (Chromium, driven by Playwright), on both stores: sign-in
with TOTP, a wrong password and lockout, every screen for each role with no request to
another host and no console error, a jurisdiction refusal, the Excel export read back,
and an accessibility pass (axe) on each screen."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from console.web import NAV
from console_support import Live, axe_violations, browser, live_console, new_page, sign_in

__all__ = ["browser", "live_console"]  # fixtures


def screens_for(role: str) -> list[str]:
    return [path for path, _, roles in NAV if roles is None or role in roles]


def test_sign_in_with_password_and_totp_then_sign_out(live_console: Live, browser: Any) -> None:
    page, watch = new_page(browser, live_console)
    page.goto(live_console.base + "/console/flags")
    assert "/console/login" in page.url  # not signed in: the sign-in page, then back here
    sign_in(page, live_console, "t-signin", here=True)
    assert page.url.endswith("/console/flags")
    assert "登录测试" in page.inner_text("header")
    cookie = next(c for c in page.context.cookies() if c["name"] == "zhuisu_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("text=退出登录")
    page.wait_for_load_state("networkidle")
    assert "/console/login" in page.url
    page.goto(live_console.base + "/console/")
    assert "/console/login" in page.url  # the session ended
    assert watch.outside == [] and watch.errors == []


def test_a_wrong_password_is_refused_and_five_lock_the_account(live_console: Live,
                                                               browser: Any) -> None:
    page, _ = new_page(browser, live_console)
    sign_in(page, live_console, "t-wrong", password="not the password 1")
    assert "/console/login" in page.url
    assert "不正确" in page.inner_text(".error")
    for _ in range(4):
        sign_in(page, live_console, "t-locked", password="wrong password 12")
    sign_in(page, live_console, "t-locked", password="wrong password 12")
    assert "锁定" in page.inner_text(".error")
    sign_in(page, live_console, "t-locked")  # the right password, but locked
    assert "/console/login" in page.url and "锁定" in page.inner_text(".error")
    log = live_console.api.state.access_log.page(_admin(), limit=1000)
    kinds = [e["subject_kind"] for e in log if e["subject_id"] in ("t-locked", "t-wrong")]
    assert kinds.count("sign_in_failed") >= 7


def _admin() -> Any:
    from access.roles import ApiRole, Principal

    return Principal("test", "test admin", ApiRole.ADMIN, None, None)


@pytest.mark.parametrize("role", ["inspector", "reviewer", "fund_officer", "admin"])
def test_every_screen_opens_for_each_role(live_console: Live, browser: Any, role: str) -> None:
    page, watch = new_page(browser, live_console, role)
    for path in screens_for(role):
        response = page.goto(live_console.base + path)
        page.wait_for_load_state("networkidle")
        assert response is not None and response.status == 200, (role, path, response.status)
        assert page.locator("h1").count() >= 1, (role, path)
    assert watch.outside == [], watch.outside
    assert watch.errors == [], watch.errors


def test_a_person_of_another_county_is_refused(live_console: Live, browser: Any) -> None:
    page, watch = new_page(browser, live_console, "neighbour")
    response = page.goto(live_console.base + "/console/?region=990121")
    assert response is not None and response.status == 403
    assert "超出您的管辖范围" in page.inner_text("main")
    response = page.goto(live_console.base + "/console/flags?region=990121")
    assert response is not None and response.status == 403
    page.goto(live_console.base + "/console/flags")
    assert "没有符合条件的问题线索" in page.inner_text("main")  # its own county: nothing
    assert watch.outside == []


def test_the_flags_export_opens_as_a_workbook_with_the_flags_shown(live_console: Live,
                                                                   browser: Any) -> None:
    page, _ = new_page(browser, live_console, "inspector")
    page.goto(live_console.base + "/console/flags?severity=high")
    shown = page.locator("tbody tr").count()
    assert shown >= 1
    with page.expect_download() as download:
        page.click("text=导出 Excel")
    data = download.value.path().read_bytes()
    sheet = load_workbook(io.BytesIO(data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][:4] == ("线索编号", "规则", "规则名称", "风险")
    body = [r for r in rows[2:] if r[0] and r[0] != "合计"]
    assert len(body) == shown and all(r[3] == "高" for r in body)


@pytest.mark.parametrize("role", ["inspector", "fund_officer"])
def test_no_screen_has_serious_accessibility_violations(live_console: Live, browser: Any,
                                                        role: str) -> None:
    page, _ = new_page(browser, live_console)
    found = {}
    page.goto(live_console.base + "/console/login")
    found["/console/login"] = axe_violations(page)
    page, _ = new_page(browser, live_console, role)
    for path in screens_for(role):
        page.goto(live_console.base + path)
        page.wait_for_load_state("networkidle")
        found[path] = axe_violations(page)
    assert {p: v for p, v in found.items() if v} == {}


def test_the_money_flow_sankey_is_drawn(live_console: Live, browser: Any) -> None:
    page, watch = new_page(browser, live_console, "fund_officer")
    page.goto(live_console.base + "/console/money")
    canvas = page.locator(".mr-sankey canvas").first
    canvas.wait_for(state="visible", timeout=30_000)
    painted = page.evaluate("""() => {
        const c = document.querySelector('.mr-sankey canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return {w: c.width, h: c.height, painted: n};
    }""")
    assert painted["w"] > 300 and painted["h"] > 200
    assert painted["painted"] > 0.05 * painted["w"] * painted["h"]  # not a blank canvas
    assert watch.outside == [] and watch.errors == []


def test_an_inspector_opens_a_case_from_two_flags_and_sees_the_leaders_added(
        live_console: Live, browser: Any) -> None:
    page, watch = new_page(browser, live_console, "inspector")
    page.goto(live_console.base + "/console/flags?severity=high")
    boxes = page.locator("input[type=checkbox][name=flag]")
    assert boxes.count() >= 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("form#open-from-flags button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/console/cases/new" in page.url and page.url.count("flag=") == 2
    case_no = f"浏览器测试-{live_console.base.rsplit(':', 1)[1]}"
    page.fill("#f-case-no", case_no)
    page.click("form.case-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/console/cases/" in page.url and "/new" not in page.url, page.inner_text("main")
    persons = page.locator("#persons tbody tr")
    assert persons.count() >= 2
    assert page.locator("#persons tr.oversight").count() >= 1  # 一案双查: leaders added
    assert "一案双查" in page.inner_text("#persons")
    assert watch.outside == [] and watch.errors == []
