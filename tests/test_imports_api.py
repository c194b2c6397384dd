"""Issue 14 points 3 and 5 over HTTP and in the console: ``POST /imports/{kind}`` (multipart
upload under its own size limit), ``GET /imports/{id}`` and its 错误清单, ``POST
/imports/{id}/confirm`` → a draft of the signing queue, signed through ``/drafts``; the
console's 导入 screen does the same with a form.  On both stores."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
from html import unescape
from typing import Any

import openpyxl
import pyotp
import pytest
from fastapi.testclient import TestClient
from factories import COUNTY, TOWNSHIP, World
from imports_support import (
    CLEAR_IDS,
    COUNTY_SIGNERS,
    PAY_DAY,
    TOWNSHIP_SIGNERS,
    a_paying_world,
    gbk_csv,
    pay_rows,
    roster_rows,
    signatures_for,
    xlsx,
)

from api_support import api_on, refused
from domain.fund_account import FundAccount
from domain.household import Household

pytestmark = pytest.mark.usefixtures("close_read_models")


@pytest.fixture
def paying(world: World) -> dict[str, Any]:
    return a_paying_world(world)


def form(account: str, **kw: Any) -> dict[str, str]:
    return {"account": account, "purpose": "hh_industry", "document_no": "羊财支〔2025〕7号",
            "effective_date": PAY_DAY.isoformat(), **kw}


def upload(caller: Any, kind: str, data: bytes, name: str, fields: dict[str, str]) -> Any:
    return caller.post(f"/imports/{kind}", data=fields,
                       files={"file": (name, data, "application/octet-stream")})


def sign_through_drafts(caller: Any, draft_id: str, signers: Any) -> Any:
    draft = caller.get(f"/drafts/{draft_id}").json()
    answer = None
    for sig in signatures_for(draft["step"], draft["subject"], draft["content"], signers):
        answer = caller.post(f"/drafts/{draft_id}/signatures", json=sig)
        assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_a_payment_list_dry_run_errors_confirm_and_three_signatures(
        api: Any, world: World, paying: dict[str, Any], caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    officer = api.as_("fund_officer", TOWNSHIP, "乡财政所 李经办")
    seen: list[str] = []
    before = world.app.recorder.max_notification_id()
    bad = upload(officer, "payment_list", gbk_csv(pay_rows()), "发放清册.csv",
                 form(paying["account"]))
    assert bad.status_code == 200, bad.text
    seen.append(bad.text)
    run = bad.json()
    assert run["ok"] is False and run["counts"]["rows_refused"] == 3
    assert [(e["row"], e["column"]) for e in run["errors"]] == [
        (6, "证件号码"), (7, "户编号"), (8, "户编号")]
    assert run["file"]["encoding"] == "gb18030"
    assert world.app.recorder.max_notification_id() == before  # nothing stored
    kept = officer.get(f"/imports/{run['import_id']}")
    assert kept.status_code == 200 and kept.json()["errors"] == run["errors"]
    book = officer.get(f"/imports/{run['import_id']}/errors.xlsx")
    assert book.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(book.content)).active
    assert [[c.value for c in r][:3] for r in sheet.iter_rows(min_row=4)] == [
        [str(e["row"]), e["column"], e["rule"]] for e in run["errors"]]
    csv_book = officer.get(f"/imports/{run['import_id']}/errors.csv")
    seen.append(csv_book.content.decode("utf-8-sig"))
    refused(officer.post(f"/imports/{run['import_id']}/confirm"), 422, "ImportHasErrors", "file")
    assert world.app.recorder.max_notification_id() == before
    # fixed: confirmed into a draft, signed through the drafts API
    good = upload(officer, "payment_list", gbk_csv(pay_rows(bad=False)), "发放清册.csv",
                  form(paying["account"]))
    seen.append(good.text)
    assert good.json()["ok"] is True and good.json()["total_yuan"] == "3,300.50"
    confirmed = officer.post(f"/imports/{good.json()['import_id']}/confirm")
    assert confirmed.status_code == 201, confirmed.text
    seen.append(confirmed.text)
    draft_id = confirmed.json()["draft_id"]
    again = officer.post(f"/imports/{good.json()['import_id']}/confirm")
    assert again.json()["draft_id"] == draft_id
    done = sign_through_drafts(officer, draft_id, TOWNSHIP_SIGNERS)
    seen.append(str(done))
    assert done["state"] == "executed", done
    account = world.app.load(FundAccount, paying["account"])
    assert account.balance == 5_000_000 - 330_050
    manifest = [e for e in world.app.stored_events(account.id)
                if type(e).__qualname__ == "FundAccount.BatchOrdered"][-1]
    assert manifest.source_sha256 == hashlib.sha256(gbk_csv(pay_rows(bad=False))).hexdigest()
    seen.append(caplog.text)
    blob = "\n".join(seen)
    assert [n for n in CLEAR_IDS if n in blob] == []  # responses and logs: never in clear


def test_roles_and_jurisdiction(api: Any, world: World, paying: dict[str, Any]) -> None:
    data = xlsx(roster_rows())
    refused(upload(api.as_("fund_officer", TOWNSHIP), "roster", data, "花名册.xlsx",
                   {"county": COUNTY}), 403, "RoleNotPermitted")
    refused(upload(api.as_("reviewer", COUNTY), "payment_list", gbk_csv(pay_rows()), "a.csv",
                   form(paying["account"])), 403, "RoleNotPermitted")
    from factories import another_county

    other = another_county(world)
    refused(upload(api.as_("fund_officer", other), "payment_list",
                   gbk_csv(pay_rows(bad=False)), "a.csv", form(paying["account"])),
            403, "OutsideJurisdiction")


def test_a_roster_uploaded_with_dry_run_false_goes_straight_to_the_queue(
        api: Any, world: World, paying: dict[str, Any]) -> None:
    county = api.as_("county_approver", COUNTY, "县乡村振兴局 王经办")
    data = xlsx(roster_rows())
    answer = upload(county, "roster", data, "花名册.xlsx",
                    {"county": COUNTY, "as_of": "2025-06-30", "dry_run": "false"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["counts"]["households_new"] == 3 and body["state"] == "confirmed"
    assert body["differences"][0]["household_code"] == "H002"
    assert not world.app.exists(Household.create_id("GJ001"))
    done = sign_through_drafts(county, body["draft_id"], COUNTY_SIGNERS)
    assert done["state"] == "executed", done
    gj1 = world.app.load(Household, Household.create_id("GJ001"))
    assert len(gj1.members) == 3
    assert [n for n in CLEAR_IDS if n in answer.text] == []


def test_an_upload_over_its_limit_is_refused_with_413(app: Any, world: World,
                                                      paying: dict[str, Any],
                                                      monkeypatch: Any) -> None:
    monkeypatch.setenv("ZHUISU_MAX_UPLOAD_BYTES", "3000")
    big = gbk_csv(pay_rows(bad=False) + [["", "", "填充", "", "", "", "x" * 4000]])
    with api_on(app) as api:
        officer = api.as_("fund_officer", TOWNSHIP)
        body = refused(upload(officer, "payment_list", big, "big.csv", form(paying["account"])),
                       413, "PayloadTooLarge", "file")
        assert "3,000" in body["detail"] and "ZHUISU_MAX_UPLOAD_BYTES" in body["detail"]

        def chunks() -> Any:  # no Content-Length: counted as it streams
            boundary = b"--xyz"
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="b.csv"'
            yield b"\r\n\r\n" + big + b"\r\n" + boundary + b"--\r\n"

        streamed = officer.post("/imports/payment_list", content=chunks(), headers={
            "Content-Type": "multipart/form-data; boundary=xyz"})
        refused(streamed, 413, "PayloadTooLarge", "file")
        small = upload(officer, "payment_list", gbk_csv(pay_rows(bad=False))[:2900], "s.csv",
                       form(paying["account"]))
        assert small.status_code in (200, 422), small.text  # under the limit: read


# the console -------------------------------------------------------------------------
def hidden(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*\bvalue="([^"]*)"', html)
    assert found, f"no field {name}"
    return unescape(found.group(1))


def signed_in(api: Any, username: str, role: str, region: str) -> tuple[TestClient, str]:
    new = api.client.app.state.accounts.create(username, username, role,
                                               api.zhuisu.region(region), created_by="test",
                                               now=dt.datetime.now(dt.UTC))
    client = TestClient(api.client.app)
    page = client.get("/console/login")
    r = client.post("/console/login", follow_redirects=False, data={
        "username": username, "password": new.password, "next": "/console/imports",
        "code": pyotp.TOTP(new.totp_secret).now(), "csrf": hidden(page.text, "csrf")})
    assert r.status_code == 303, r.text
    return client, hidden(client.get("/console/imports").text, "csrf")


def test_the_console_imports_a_payment_list_into_the_signing_queue(
        api: Any, world: World, paying: dict[str, Any]) -> None:
    client, csrf = signed_in(api, "t-officer", "fund_officer", TOWNSHIP)
    home = client.get("/console/imports")
    assert "导入" in home.text and 'enctype="multipart/form-data"' in home.text
    assert 'id="import-payment_list"' in home.text and 'id="import-roster"' not in home.text
    fields = {"kind": "payment_list", **form(paying["account"])}
    no_csrf = client.post("/console/imports", data=fields, follow_redirects=False,
                          files={"file": ("发放清册.csv", gbk_csv(pay_rows()), "text/csv")})
    assert no_csrf.status_code == 403 and "表单校验失败" in no_csrf.text
    r = client.post("/console/imports", data={**fields, "csrf": csrf}, follow_redirects=False,
                    files={"file": ("发放清册.csv", gbk_csv(pay_rows()), "text/csv")})
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    assert "证件号码校验位错误" in page.text and "已于2025-06-01清退" in page.text
    assert "下载 错误清单.xlsx" in page.text and 'id="confirm-import"' not in page.text
    assert [n for n in CLEAR_IDS if n in page.text] == []
    book = client.get(r.headers["location"] + "/errors.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(book.content)).active["A1"].value == "导入错误清单"
    r = client.post("/console/imports", data={**fields, "csrf": csrf}, follow_redirects=False,
                    files={"file": ("发放清册.csv", gbk_csv(pay_rows(bad=False)), "text/csv")})
    page = client.get(r.headers["location"])
    assert "3,300.50 元" in page.text and 'id="confirm-import"' in page.text
    confirm = client.post(r.headers["location"] + "/confirm", data={"csrf": csrf},
                          follow_redirects=False)
    assert confirm.status_code == 303 and confirm.headers["location"].startswith(
        "/console/drafts/")
    draft_page = client.get(confirm.headers["location"])
    assert draft_page.status_code == 200 and "待签" in draft_page.text
    page = client.get(r.headers["location"])
    assert 'id="draft-link"' in page.text
