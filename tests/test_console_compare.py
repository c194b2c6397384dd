"""大数据比对 and 线索处置 in the console: an inspector uploads a register (dry run with a
refused row, then confirm), sees the snapshot and the match with its evidence and signers,
raises a lead from it, carries it through 交办 (deadline in working days) → 核实 → 反馈 →
审核 → 立案 by forms, and the statistics and the 线索处置台账 follow;
refusals by role, jurisdiction and CSRF; every match and lead shown is in the access log.
Every test runs on both stores.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from html import unescape

import pytest
from api_support import Api
from factories import COUNTY, VILLAGE, World, a_funded_account, another_county, official, \
    official_id
from test_compare import csv, pay, person, registered
from test_console_cases import Person, access_log, refusal, text_of

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
UNIT = f"U{VILLAGE}"
ACCOUNTANT = official_id(official("accountant", VILLAGE))
CASE = "县纪〔2025〕31号"


class Dead:
    """A household paid the day after its member died, and one paid before."""

    def __init__(self, world: World):
        a_funded_account(world)
        self.h1 = str(registered(world, "H1"))
        self.h2 = str(registered(world, "H2"))
        self.paid = pay(world, self.h1, D(2025, 3, 2), amount=12_345)
        self.before = pay(world, self.h2, D(2025, 2, 1))
        self.data = csv(["姓名", "证件号码", "死亡日期"],
                        ["甲", person("H1", "spouse"), "2025-03-01"],
                        ["乙", "123", "2025-03-01"],
                        ["丙", person("H2"), "2025-03-01"])


@pytest.fixture
def dead(world: World) -> Dead:
    return Dead(world)


def upload(who: Person, data: bytes, **form: str):
    fields = {"department": "县公安局", "kind": "death", "as_of": "2025-06-30", **form,
              "csrf": who.csrf}
    return who.client.post("/console/compare/registers", data=fields,
                           files={"file": ("死亡人员.csv", data, "text/csv")},
                           follow_redirects=False)


def confirm_key(html: str) -> str:
    found = re.search(r'action="/console/compare/registers/([^"/]+)/confirm"', html)
    assert found, "no confirm form"
    return unescape(found.group(1))


def moved(r) -> str:
    assert r.status_code == 303, text_of(r.text)[:2000]
    return r.headers["location"]


def test_a_register_uploaded_matched_and_carried_from_lead_to_case(api: Api, dead: Dead):
    inspector = Person(api, "inspector-c", "inspector", COUNTY, "县纪委 李检查")
    home = inspector.get("/console/compare")
    assert home.status_code == 200 and "尚未导入比对数据" in home.text
    assert 'href="/console/compare"' in home.text and 'href="/console/leads"' in home.text

    dry = upload(inspector, dead.data)
    assert dry.status_code == 200, text_of(dry.text)[:2000]
    said = text_of(dry.text)
    assert "试导入结果" in said and "保留行数 2" in said and "被拒绝行数 1" in said
    assert "未保存" in said and person("H1", "spouse") not in dry.text
    assert api.client.get("/registers").json()["items"] == []  # nothing stored yet
    done = inspector.post(f"/console/compare/registers/{confirm_key(dry.text)}/confirm", {})
    assert done.status_code == 200 and "已导入（快照" in text_of(done.text)
    snapshots = api.client.get("/registers").json()["items"]
    assert [(s["department"], s["row_count"]) for s in snapshots] == [("县公安局", 2)]
    # confirming twice: the upload is gone
    assert inspector.post(f"/console/compare/registers/{confirm_key(dry.text)}/confirm",
                          {}).status_code == 404

    listed = inspector.get("/console/compare")
    said = text_of(listed.text)
    assert "县公安局" in said and snapshots[0]["file_sha256"][:16] in said and "现行" in said
    assert "死亡后仍发放（1）" in said and "H1" in said
    match = api.client.get("/compare/matches").json()["items"][0]
    assert match["detail"]["movement_id"] == dead.paid
    page = inspector.get(f"/console/compare/matches/{match['match_id']}")
    assert page.status_code == 200, page.text[:2000]
    said = text_of(page.text)
    assert "死亡日期 2025-03-01" in said and "文件行号 2" in said
    assert "123.45" in said and "2025-03-02" in said  # the payment, in 元
    for oid in match["signers"]:
        assert oid in page.text
    assert ("/console/compare/matches/{match_id:path}", "household", dead.h1) in \
        access_log(api, inspector.token_id)

    # 立线索 → 交办 → 核实 → 反馈 → 审核 → 立案
    raised = moved(inspector.post("/console/leads", {
        "source_kind": "match", "source_ref": match["match_id"],
        "effective_date": "2025-09-30"}))
    lead_id = raised.split("/console/leads/")[1].split("?")[0]
    again = moved(inspector.post("/console/leads", {
        "source_kind": "match", "source_ref": match["match_id"], "effective_date": "2025-09-30"}))
    assert again == f"/console/leads/{lead_id}?done=same"
    shown = inspector.get(raised)
    assert shown.status_code == 200 and 'id="form-assign"' in shown.text
    assert f'value="{ACCOUNTANT}"' in shown.text and f'value="{UNIT}"' in shown.text
    base = f"/console/leads/{lead_id}/steps"
    moved(inspector.post(f"{base}/assign", {"unit_code": UNIT, "official_id": ACCOUNTANT,
                                            "working_days": "1", "effective_date": "2025-09-30"}))
    view = api.client.get(f"/leads/{lead_id}").json()
    assert view["deadline"] == "2025-10-09", "国庆: the first working day after 9-30 is 10-09"
    refused = inspector.post(f"{base}/report", {"report": "x", "effective_date": "2025-10-09"})
    refusal(refused, 409, "StepOutOfOrder", "操作被拒绝")
    moved(inspector.post(f"{base}/verify", {"verdict": "founded", "reasons": "死亡后仍发放",
                                            "amount": "123.45", "effective_date": "2025-10-09"}))
    moved(inspector.post(f"{base}/report", {"report": "已核实属实", "effective_date": "2025-10-09"}))
    moved(inspector.post(f"{base}/review", {"accepted": "yes", "opinion": "同意",
                                            "effective_date": "2025-10-10"}))
    page = inspector.get(f"/console/leads/{lead_id}")
    assert 'id="form-open-case"' in page.text and 'id="form-close"' in page.text
    moved(inspector.post(f"{base}/open_case", {
        "case_no": CASE, "case_type": "false_claim", "title": "死亡后冒领产业补助",
        "conclusion": "立案审查", "effective_date": "2025-10-10"}))
    view = api.client.get(f"/leads/{lead_id}").json()
    assert (view["status"], view["disposition"], view["case_no"]) == ("closed", "case_opened",
                                                                      CASE)
    assert view["amount_fen"] == 12_345
    assert all(m["recorded_by"] == f"县纪委 李检查 (inspector, token {inspector.token_id})"
               for m in view["moves"])
    page = inspector.get(f"/console/leads/{lead_id}")
    said = text_of(page.text)
    assert "立案" in said and CASE in said and 'id="case-link"' in page.text
    assert [s for s in ("交办", "核实", "反馈", "审核", "处置") if s not in said] == []
    case = api.client.get("/cases/" + CASE).json()
    assert {"kind": "payment", "ref": dead.paid} in [
        {"kind": e["kind"], "ref": e["ref"]} for e in case["evidence"]]

    # the list, the statistics per unit, the 台账
    listed = inspector.get("/console/leads", params={"as_of": "2025-10-20"})
    said = text_of(listed.text)
    assert view["lead_no"] in said and "100.00%" in said and UNIT in said
    assert ("/console/leads", "lead", lead_id) in access_log(api, inspector.token_id)
    book = inspector.get("/console/leads.xlsx", params={"as_of": "2025-10-20"})
    assert book.status_code == 200
    from openpyxl import load_workbook

    rows = list(load_workbook(io.BytesIO(book.content)).active.iter_rows(values_only=True))
    assert rows[1][0] == "线索编号" and rows[2][0] == view["lead_no"]
    assert "立案" in rows[2] and CASE in rows[2] and 123.45 in rows[2]


def test_refusals_by_role_jurisdiction_and_csrf(api: Api, dead: Dead, world: World):
    reviewer = Person(api, "reviewer-c", "reviewer", COUNTY)
    refusal(upload(reviewer, dead.data), 403, "RoleNotPermitted", "您的角色无权进行此操作")
    inspector = Person(api, "inspector-d", "inspector", COUNTY)
    r = inspector.client.post("/console/compare/registers",
                              data={"department": "县公安局", "kind": "death",
                                    "as_of": "2025-06-30"},
                              files={"file": ("d.csv", dead.data, "text/csv")})
    refusal(r, 403, "CsrfRefused", "表单校验失败")
    key = confirm_key(upload(inspector, dead.data).text)
    confirm = inspector.post(f"/console/compare/registers/{key}/confirm", {})
    assert confirm.status_code == 200
    match = api.client.get("/compare/matches").json()["items"][0]
    # the reviewer reads but does not raise
    page = reviewer.get(f"/console/compare/matches/{match['match_id']}")
    assert page.status_code == 200 and 'id="raise-lead"' not in page.text
    refusal(reviewer.post("/console/leads", {"source_kind": "match",
                                              "source_ref": match["match_id"]}),
            403, "RoleNotPermitted", "您的角色无权进行此操作")
    # another county's inspector sees nothing of it
    other = Person(api, "inspector-b", "inspector", another_county(world))
    refusal(other.get(f"/console/compare/matches/{match['match_id']}"), 403,
            "OutsideJurisdiction", "超出您的管辖范围")
    refusal(other.post("/console/leads", {"source_kind": "match",
                                           "source_ref": match["match_id"]}),
            403, "OutsideJurisdiction", "超出您的管辖范围")
    assert "死亡后仍发放（0）" in text_of(other.get("/console/compare").text)
