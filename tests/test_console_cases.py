"""案件 in the console: people sign in through the real form, open a case from two flags,
take its steps through forms, and see what the API's ``GET /cases/{case_no}`` sees.

The world is one county (522625) with two flags in village 522625100001 — a duplicate
payment (PAY_DUPLICATE) to H1 and a payment to H2 removed from the register (PAY_REMOVED)
— each signed by the township's finance accountant, head and party secretary.  County B
(522626) is empty beside it.  Every test runs on both stores.
"""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from typing import Any
from urllib.parse import quote

import pyotp
import pytest
from api_support import Api
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    another_county,
    household_payment,
    official,
    official_id,
    recovery,
    removal,
    run,
)
from fastapi.testclient import TestClient

from console.format import yuan

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
CASE = "县纪〔2025〕12号"
PAGE = f"/console/cases/{quote(CASE, safe='')}"
API = f"/cases/{quote(CASE, safe='')}"
ACCOUNTANT = official("finance_accountant", TOWNSHIP)
HEAD = official("head", TOWNSHIP)
SECRETARY = official("party_secretary", TOWNSHIP)


# givens -------------------------------------------------------------------------------------
class Flagged:
    """The world's two flags and the payments they concern."""

    def __init__(self, world: World):
        self.account = str(a_funded_account(world, TOWNSHIP, 5_000_000))
        h1 = str(a_registered_household(world, "H1"))
        h2 = str(a_registered_household(world, "H2"))
        self.first = self.pay(world, h1, 10_000, D(2025, 3, 1))
        self.twice = self.pay(world, h1, 20_000, D(2025, 3, 20))
        self.removed = self.pay(world, h2, 30_000, D(2025, 6, 5))
        run(world, "Household.RemovedFromRegister", h2, removal(D(2025, 6, 1)))
        self.flags = [f"PAY_DUPLICATE:{self.twice}", f"PAY_REMOVED:{self.removed}"]

    def pay(self, world: World, household: str, fen: int, day: D) -> str:
        content = household_payment(household, fen, day=day)
        run(world, "FundAccount.Disbursed", self.account, content)
        return content["movement_id"]

    def key(self, movement_id: str) -> str:
        return f"{self.account}|{movement_id}"


@pytest.fixture
def flagged(world: World) -> Flagged:
    return Flagged(world)


class Person:
    """A signed-in person: a browser of their own (cookies) on the same app."""

    def __init__(self, api: Api, username: str, role: str, region: str | None,
                 name: str | None = None):
        accounts = api.client.app.state.accounts
        where = api.zhuisu.region(region) if region else None
        new = accounts.create(username, name or username, role, where, created_by="test",
                              now=dt.datetime.now(dt.UTC))
        self.client = TestClient(api.client.app)
        form = self.client.get("/console/login")
        assert form.status_code == 200
        r = self.client.post("/console/login", follow_redirects=False, data={
            "username": username, "password": new.password, "next": "/console/cases",
            "code": pyotp.TOTP(new.totp_secret).now(), "csrf": hidden(form.text, "csrf")})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/console/cases"
        self.csrf = hidden(self.get("/console/cases").text, "csrf")
        self.token_id = new.account.principal.token_id

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict[str, Any], *, csrf: bool = True, **kw: Any) -> Any:
        body = {**data, **({"csrf": self.csrf} if csrf else {})}
        return self.client.post(url, data=body, follow_redirects=False, **kw)


def hidden(html: str, name: str) -> str:
    """The value of the (first) input named ``name``."""
    found = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*\bvalue="([^"]*)"', html)
    assert found, f"no field {name}"
    return unescape(found.group(1))


def text_of(html: str) -> str:
    """What the page says: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def opening(flagged: Flagged, **kw: Any) -> dict[str, Any]:
    """The new-case form as an inspector fills it: the two flags, their evidence, the
    accountant alone as the person under review (一案双查 adds the leaders)."""
    acc = official_id(ACCOUNTANT)
    return {"case_no": CASE, "case_type": "false_claim", "title": "坪地村重复发放、向清退户发放",
            "region_code": VILLAGE, "effective_date": "2025-07-01",
            "incident_date": "2025-03-20", "flag_ids": flagged.flags, "subjects": [acc],
            f"reason:{acc}": "经办重复发放和向清退户发放",
            "evidence": [f"payment|{flagged.twice}|{flagged.account}",
                         f"payment|{flagged.removed}|{flagged.account}"], **kw}


def access_log(api: Api, token_id: str) -> list[tuple[str, str, str]]:
    """The access log's rows of one person (read over the API by an administrator)."""
    r = api.client.get("/access-log", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [(e["route"], e["subject_kind"], e["subject_id"]) for e in r.json()["items"]
            if e["token_id"] == token_id]


def refusal(r: Any, status: int, rule: str, title: str) -> None:
    """The console's refusal page: status, the Chinese title and the rule."""
    assert r.status_code == status, r.text[:2000]
    assert f"<code>{rule}</code>" in r.text and title in r.text


def cases_in_store(api: Api) -> list[str]:
    return [c["case_no"] for c in api.client.get("/cases").json()["items"]]


# an inspector opens a case from two flags ---------------------------------------------------
def test_an_inspector_opens_a_case_from_two_flags_and_sees_the_oversight_leaders(
        api: Api, flagged: Flagged) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY, "县纪委 王检查")
    listed = inspector.get("/console/flags")
    assert listed.status_code == 200
    for flag in flagged.flags:  # a checkbox per flag, submitted to the new-case form
        assert f'name="flag" value="{flag}" form="open-from-flags"' in listed.text
    assert 'action="/console/cases/new"' in listed.text and "据此立案" in listed.text

    drafted = inspector.get("/console/cases/new", params={"flag": flagged.flags})
    assert drafted.status_code == 200, drafted.text[:2000]
    assert hidden(drafted.text, "region_code") == VILLAGE  # the flags' common region
    assert hidden(drafted.text, "incident_date") == "2025-03-20"  # the earliest flag
    for code in (ACCOUNTANT, HEAD, SECRETARY):  # the flagged payments' signers, offered
        assert f'name="subjects" value="{official_id(code)}"' in drafted.text
    assert f'value="payment|{flagged.removed}|{flagged.account}"' in drafted.text
    assert f'name="flag_ids" value="{flagged.flags[0]}"' in drafted.text

    opened = inspector.post("/console/cases/new", opening(flagged))
    assert opened.status_code == 303, text_of(opened.text)[:2000]
    assert opened.headers["location"] == f"{PAGE}?done=open"

    shown = inspector.get(opened.headers["location"])
    assert shown.status_code == 200
    said = text_of(shown.text)
    assert "立案：已记录" in said
    view = api.client.get(API).json()
    assert view["recorded_by"] == f"县纪委 王检查 (inspector, token {inspector.token_id})"
    assert view["flag_ids"] == flagged.flags
    basis = {p["code"]: p["basis"] for p in view["persons"]}
    assert basis[ACCOUNTANT] == "subject"
    assert basis[HEAD] == basis[SECRETARY] == "oversight"  # 一案双查, added by the application
    for p in view["persons"]:
        assert p["code"] in said
    assert said.count("一案双查：") == sum(1 for p in view["persons"]
                                         if p["basis"] == "oversight")
    assert f"任羊场镇（{TOWNSHIP}）乡镇长（第一责任），对被审查人{ACCOUNTANT}" in said

    # every read recorded: the flags listed and drafted from, the case shown
    rows = access_log(api, inspector.token_id)
    assert ("/console/cases/new", "flag", flagged.flags[1]) in rows
    assert ("/console/cases/{case_no}", "case", view["case_id"]) in rows
    assert ("/console/cases", "case", view["case_id"]) not in rows  # not listed yet
    assert CASE in text_of(inspector.get("/console/cases").text)
    assert ("/console/cases", "case", view["case_id"]) in access_log(api, inspector.token_id)


# the case page and the API ------------------------------------------------------------------
def test_the_case_page_shows_what_the_api_shows_after_each_form(api: Api, flagged: Flagged,
                                                                world: World) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY)
    assert inspector.post("/console/cases/new", opening(flagged)).status_code == 303
    steps = [
        ("steps/record_finding", {"finding_id": "F1", "text": "重复发放医疗救助\r\n并向清退户发放",
                                  "amount": "1,234.50", "effective_date": "2025-07-02"}),
        ("steps/impose_accountability", {"official_id": official_id(HEAD),
                                         "action": "admonition_talk",
                                         "decision_no": "县纪〔2025〕诫3号",
                                         "reason": "一案双查：监管不力",
                                         "effective_date": "2025-07-03"}),
        ("steps/add_rectification_item", {"item_id": "R1", "problem": "退回重复发放资金",
                                          "deadline": "2025-07-10",
                                          "unit_code": f"U{TOWNSHIP}", "official": HEAD,
                                          "effective_date": "2025-07-03"}),
        ("steps/add_rectification_item", {"item_id": "R2", "problem": "建立发放前核对制度",
                                          "deadline": "2025-12-31",
                                          "unit_code": f"U{TOWNSHIP}",
                                          "official": official_id(SECRETARY),
                                          "effective_date": "2025-07-03"}),
        ("steps/complete_rectification_item", {"item_id": "R2", "evidence": "制度文件",
                                               "effective_date": "2025-07-05"}),
        ("steps/link_evidence", {"kind": "document", "ref": "镇财〔2025〕7号",
                                 "note": "发放花名册", "effective_date": "2025-07-05"}),
        ("recovery-orders", {"order_id": "追1", "reason": "谁签字谁追回",
                             "effective_date": "2025-07-06",
                             "pay": [flagged.key(flagged.removed), flagged.key(flagged.twice)],
                             f"amount:{flagged.key(flagged.twice)}": "100.01"}),
    ]
    for path, form in steps:
        r = inspector.post(f"{PAGE}/{path}", form)
        assert r.status_code == 303, (path, text_of(r.text)[:3000])
        assert "done=" in r.headers["location"]
    # a payment recovered in part after the order (谁签字谁追回: shares of what is left)
    run(world, "FundAccount.Recovered", flagged.account,
        recovery(flagged.removed, 10_000, day=D(2025, 7, 20)))
    # an exact retry is answered, not stored twice
    again = inspector.post(f"{PAGE}/steps/record_finding", steps[0][1])
    assert again.status_code == 303 and "same=1" in again.headers["location"]

    view = api.client.get(API).json()
    said = text_of(inspector.get(PAGE).text)
    assert view["findings"][0]["text"] == "重复发放医疗救助 并向清退户发放"  # no control characters
    assert view["findings"][0]["amount_fen"] == 123_450 and "1,234.50" in said
    for f in view["findings"]:
        assert f["text"] in said
    for a in view["actions"]:
        assert a["decision_no"] in said and "诫勉谈话" in said
    for p in view["persons"]:
        assert p["code"] in said and (p["name"] or "") in said
    for e in view["evidence"]:
        assert (e["note"] or "") in said
    assert "镇财〔2025〕7号" in said
    money = view["recovery"]
    assert money["total"] == {"ordered_fen": 30_000 + 10_001, "recovered_fen": 10_000,
                                 "outstanding_fen": 30_001}
    for k in ("ordered_fen", "recovered_fen", "outstanding_fen"):
        assert yuan(money["total"][k]) in said
    by_official = said.split("按责任人", 1)[1].split("追回令", 1)[0]
    assert len(money["by_official"]) == 3
    for o in money["by_official"]:  # each signer's ordered / recovered / outstanding
        assert (f"{o['code']} {o['unit_code']} {yuan(o['ordered_fen'])} "
                f"{yuan(o['recovered_fen'])} {yuan(o['outstanding_fen'])}") in by_official, o
    items = {i["item_id"]: i for i in view["rectification"]["items"]}
    assert items["R1"]["status"] == "overdue" and items["R2"]["status"] == "completed"
    assert f"逾期未完成 · 逾期 {items['R1']['days_overdue']} 天" in said
    assert "2025-07-10" in said and "2025-12-31" in said

    # 整改 done late, 整改到位, 结案: the page then offers no form
    for path, form in [("steps/complete_rectification_item", {
                            "item_id": "R1", "evidence": "退款凭证",
                            "effective_date": "2025-07-21"}),
                       ("steps/rectify", {"summary": "整改完成", "effective_date": "2025-07-22"}),
                       ("steps/close", {"conclusion": "诫勉谈话一人，资金追回中",
                                        "effective_date": "2025-07-23"})]:
        r = inspector.post(f"{PAGE}/{path}", form)
        assert r.status_code == 303, (path, text_of(r.text)[:3000])
    view = api.client.get(API).json()
    closed = inspector.get(PAGE).text
    assert view["status"] == "closed" and view["closed_on"] == "2025-07-23"
    assert "已结案" in closed and "诫勉谈话一人，资金追回中" in closed
    assert "逾期完成 · 逾期 11 天" in text_of(closed)
    assert "<details" not in closed and "<form" not in closed.split("<main", 1)[1]


# refusals -----------------------------------------------------------------------------------
def test_a_refused_form_is_shown_again_with_a_chinese_message_beside_the_field(
        api: Api, flagged: Flagged) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY)
    bad = inspector.post("/console/cases/new", opening(flagged, case_no="县纪 2025.1"))
    assert bad.status_code == 422
    assert hidden(bad.text, "case_no") == "县纪 2025.1"  # what was entered, kept
    assert re.search(r'id="f-case-no-err"[^>]*>案号须为 1–64 个汉字', bad.text)
    assert 'aria-describedby="f-case-no-err"' in bad.text

    # evidence outside the case's region: a case in the other village, with these flags
    outside = inspector.post("/console/cases/new", opening(flagged, region_code=OTHER_VILLAGE))
    assert outside.status_code == 422
    assert "不在本案地区范围内" in text_of(outside.text)
    assert re.search(r'id="f-evidence-err"[^>]*>不在本案地区范围内', outside.text)

    assert inspector.post("/console/cases/new", opening(flagged)).status_code == 303
    too_much = inspector.post(f"{PAGE}/recovery-orders", {
        "order_id": "追1", "reason": "x", "effective_date": "2025-07-06",
        "pay": [flagged.key(flagged.removed)],
        f"amount:{flagged.key(flagged.removed)}": "300.01"})
    assert too_much.status_code == 422
    assert "追回金额不能超过该笔支付尚未追回的 300.00 元" in text_of(too_much.text)
    assert "<details class=\"case-step noprint\" open>" in too_much.text
    not_person = inspector.post(f"{PAGE}/steps/impose_accountability", {
        "official_id": official_id(official("director", VILLAGE)), "action": "criticism",
        "decision_no": "D1", "reason": "x", "effective_date": "2025-07-03"})
    assert not_person.status_code == 422
    assert re.search(r'id="f-ac-who-err"[^>]*>问责对象须是本案的被审查人', not_person.text)
    early = inspector.post(f"{PAGE}/steps/record_finding", {
        "finding_id": "F1", "text": "x", "amount": "1.234", "effective_date": "2025-07-02"})
    assert re.search(r'id="f-fd-amount-err"[^>]*>金额须为不小于 0 的元数', early.text)
    unknown = inspector.post(f"{PAGE}/steps/add_person", {
        "official": "nobody@nowhere", "basis": "subject", "reason": "x",
        "effective_date": "2025-07-02"})
    assert unknown.status_code == 404
    assert re.search(r'id="f-person-err"[^>]*>未找到该干部', unknown.text)
    close = inspector.post(f"{PAGE}/steps/add_rectification_item", {
        "item_id": "R1", "problem": "p", "deadline": "2025-07-10", "unit_code": f"U{TOWNSHIP}",
        "official": HEAD, "effective_date": "2025-07-03"})
    assert close.status_code == 303
    refused = inspector.post(f"{PAGE}/steps/close", {"conclusion": "结案",
                                                    "effective_date": "2025-07-09"})
    assert refused.status_code == 409
    assert "尚有整改事项未完成" in text_of(refused.text)
    assert api.client.get(API).json()["status"] == "open"
    assert api.client.get(API).json()["findings"] == []


def test_a_reviewer_reads_but_every_write_is_refused(api: Api, flagged: Flagged) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY)
    assert inspector.post("/console/cases/new", opening(flagged)).status_code == 303
    before = api.client.get(API).json()
    for role, region in (("reviewer", COUNTY), ("admin", None)):
        reader = Person(api, f"{role}-a", role, region)
        listed = reader.get("/console/cases")
        assert listed.status_code == 200 and CASE in text_of(listed.text)
        assert "新建案件" not in listed.text
        page = reader.get(PAGE)
        assert page.status_code == 200 and "一案双查" in page.text
        assert "<form" not in page.text.split("<main", 1)[1]  # no form but signing out
        assert 'name="flag"' not in reader.get("/console/flags").text
        refusal(reader.get("/console/cases/new", params={"flag": flagged.flags}), 403,
                "RoleNotPermitted", "您的角色无权进行此操作")
        refusal(reader.post("/console/cases/new", opening(flagged, case_no="R-1")), 403,
                "RoleNotPermitted", "您的角色无权进行此操作")
        for step in ("link_evidence", "add_person", "record_finding", "impose_accountability",
                     "add_rectification_item", "complete_rectification_item", "rectify",
                     "close"):
            refusal(reader.post(f"{PAGE}/steps/{step}", {"effective_date": "2025-07-02"}),
                    403, "RoleNotPermitted", "您的角色无权进行此操作")
        refusal(reader.post(f"{PAGE}/recovery-orders", {
            "order_id": "追1", "reason": "x", "effective_date": "2025-07-06",
            "pay": flagged.key(flagged.removed)}), 403, "RoleNotPermitted", "您的角色无权")
        rows = access_log(api, reader.token_id)
        assert ("/console/cases/{case_no}", "case", before["case_id"]) in rows
    assert api.client.get(API).json() == before
    assert cases_in_store(api) == [CASE]


def test_an_inspector_of_another_county_is_refused(api: Api, flagged: Flagged,
                                                   world: World) -> None:
    Person(api, "inspector-a", "inspector", COUNTY).post("/console/cases/new", opening(flagged))
    b = Person(api, "inspector-b", "inspector", another_county(world))
    refusal(b.get(PAGE), 403, "OutsideJurisdiction", "超出您的管辖范围")
    refusal(b.get("/console/cases", params={"region": COUNTY}), 403, "OutsideJurisdiction",
            "超出您的管辖范围")
    assert CASE not in b.get("/console/cases").text
    refusal(b.get("/console/cases/new", params={"flag": flagged.flags[0]}), 403,
            "OutsideJurisdiction", "超出您的管辖范围")
    refusal(b.post(f"{PAGE}/steps/record_finding", {
        "finding_id": "F1", "text": "x", "effective_date": "2025-07-02"}), 403,
        "OutsideJurisdiction", "超出您的管辖范围")
    refusal(b.post(f"{PAGE}/recovery-orders", {
        "order_id": "追1", "reason": "x", "effective_date": "2025-07-06",
        "pay": flagged.key(flagged.removed)}), 403, "OutsideJurisdiction", "超出您的管辖范围")
    opened = b.post("/console/cases/new", {**opening(flagged, case_no="B-1"), "flag_ids": [],
                                           "evidence": []})
    assert opened.status_code == 403
    assert re.search(r'id="f-region-err"[^>]*>该地区超出您的管辖范围', opened.text)
    assert cases_in_store(api) == [CASE] and api.client.get(API).json()["findings"] == []
    # refused reads show nothing and record nothing (but the sign-in)
    assert [kind for _, kind, _ in access_log(api, b.token_id)] == ["sign_in"]


def test_a_form_without_the_csrf_field_is_refused(api: Api, flagged: Flagged) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY)
    refusal(inspector.post("/console/cases/new", opening(flagged), csrf=False), 403,
            "CsrfRefused", "表单校验失败")
    assert cases_in_store(api) == []
    assert inspector.post("/console/cases/new", opening(flagged)).status_code == 303
    finding = {"finding_id": "F1", "text": "x", "effective_date": "2025-07-02"}
    refusal(inspector.post(f"{PAGE}/steps/record_finding", finding, csrf=False), 403,
            "CsrfRefused", "表单校验失败")
    refusal(inspector.post(f"{PAGE}/steps/record_finding", {**finding, "csrf": "forged"},
                           csrf=False), 403, "CsrfRefused", "表单校验失败")
    refusal(inspector.post(f"{PAGE}/recovery-orders", {
        "order_id": "追1", "reason": "x", "effective_date": "2025-07-06",
        "pay": flagged.key(flagged.removed)}, csrf=False), 403, "CsrfRefused", "表单校验失败")
    assert api.client.get(API).json()["findings"] == []
    assert api.client.get(API).json()["recovery"]["orders"] == []


EXTERNAL = re.compile(r"""(?:src|href|action|srcset|poster|data|formaction)\s*=\s*["']?\s*"""
                      r"""(?:[a-z][a-z0-9+.-]*:)?//|url\(\s*["']?\s*(?:[a-z]+:)?//|https?://""",
                      re.IGNORECASE)


def test_no_page_references_another_host(api: Api, flagged: Flagged) -> None:
    inspector = Person(api, "inspector-a", "inspector", COUNTY)
    pages = [inspector.get("/console/cases"), inspector.get("/console/flags"),
             inspector.get("/console/cases/new", params={"flag": flagged.flags}),
             inspector.post("/console/cases/new", opening(flagged, case_no="bad no"))]
    assert inspector.post("/console/cases/new", opening(flagged)).status_code == 303
    pages += [inspector.get(PAGE), inspector.get("/console/cases/nope"),
              inspector.post(f"{PAGE}/steps/close", {"conclusion": "x",
                                                     "effective_date": "2013-01-01"})]
    for r in pages:
        assert r.headers["content-type"].startswith("text/html")
        assert not EXTERNAL.findall(r.text), (r.url, EXTERNAL.findall(r.text))
        for ref in re.findall(r"""(?:src|href|action)="([^"]+)\"""", r.text):
            assert ref.startswith(("/", "#", "?")) or ref == "javascript:history.back()", ref
    assert pages[-2].status_code == 404 and "未找到" in pages[-2].text
    assert pages[-1].status_code == 422
