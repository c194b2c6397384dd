"""Cases, recovery, rectification, surveys, 三率一度 and flags over HTTP: who may, where,
and what the access log keeps.

The world is one county (522625); county B (522626) is empty beside it, so a token bound
to B lies outside everything in the world.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from urllib.parse import quote

import pytest
from api_support import refused
from factories import (
    COUNTY,
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
    sign,
)
from openpyxl import load_workbook

from exchange.layout import HEADER_ROW, read_csv

D = dt.date
CASE = "镇纪〔2025〕3号"
URL = f"/cases/{quote(CASE, safe='')}"
ACCOUNTANT = official_id(official("accountant", VILLAGE))
HEAD = official_id(official("head", TOWNSHIP))


@pytest.fixture
def county_b(world: World) -> str:
    return another_county(world)


def case_body(**kw: Any) -> dict[str, Any]:
    return {"case_no": CASE, "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
            "region_code": VILLAGE, "effective_date": "2025-05-01",
            "incident_date": "2025-03-01",
            "subjects": [{"official_id": ACCOUNTANT, "reason": "经办虚报"}], **kw}


def item(item_id: str = "R1", deadline: str = "2025-06-30") -> dict[str, Any]:
    return {"step": "add_rectification_item", "effective_date": "2025-05-02",
            "item_id": item_id, "problem": "退回虚报资金", "deadline": deadline,
            "unit_code": f"U{VILLAGE}",
            "official_id": official_id(official("party_secretary", VILLAGE))}


def access_log(api: Any, **params: Any) -> list[tuple[str, str, str]]:
    r = api.client.get("/access-log", params=params)
    assert r.status_code == 200, r.text
    return [(e["role"], e["route"], e["subject_kind"]) for e in r.json()["items"]]


def test_an_inspector_opens_a_case_recorded_by_its_token_and_a_retry_changes_nothing(
        api: Any, world: World) -> None:
    inspector = api.as_("inspector", COUNTY, name="县纪委 王")
    r = inspector.post("/cases", json=case_body())
    assert r.status_code == 201, r.text
    assert r.headers["location"] == URL
    assert inspector.post("/cases", json=case_body()).json()["recorded"] is False
    refused(inspector.post("/cases", json=case_body(title="另一件事")), 409, "AlreadyExists",
            "case_no")
    refused(inspector.post("/cases", json=case_body(recorded_by="someone else")), 422,
            "InvalidInput", "recorded_by")
    refused(inspector.post("/cases", json=case_body(case_type="corruption")), 422,
            "InvalidInput", "case_type")
    refused(inspector.post("/cases", json=case_body(case_no="C2", suspend_policies=["x"])), 422,
            "InvalidInput", "suspend_policies[0]")

    view = inspector.get(URL).json()
    assert view["recorded_by"].startswith("县纪委 王 (inspector, token ")
    assert {p["official_id"]: p["basis"] for p in view["persons"]}[HEAD] == "oversight"
    # a step with an Idempotency-Key, retried, is answered again and stored once
    finding = {"step": "record_finding", "effective_date": "2025-05-03", "finding_id": "F1",
               "text": "虚报产业补助", "amount_fen": 10_000}
    first = inspector.post(f"{URL}/steps", json=finding, headers={"Idempotency-Key": "f-1"})
    again = inspector.post(f"{URL}/steps", json=finding, headers={"Idempotency-Key": "f-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    refused(inspector.post(f"{URL}/steps", json={**finding, "step": "promote"}), 422,
            "InvalidInput")
    refused(inspector.post(f"{URL}/steps", json={**item(), "deadline": "2025-04-01"}), 422,
            "InvalidInput", "deadline")
    refused(inspector.post("/cases/nope/steps", json=finding), 404, "NotFound", "case_no")
    assert [f["finding_id"] for f in inspector.get(URL).json()["findings"]] == ["F1"]


OTHER_ROLES = [("fund_officer", COUNTY), ("village_official", VILLAGE),
               ("township_reviewer", TOWNSHIP), ("county_approver", COUNTY),
               ("reviewer", COUNTY), ("admin", None)]


def test_only_inspectors_write_cases_and_only_they_and_admins_record_surveys(
        api: Any, world: World) -> None:
    assert api.as_("inspector", COUNTY).post("/cases", json=case_body()).status_code == 201
    survey = {"survey_id": "S1", "year": 2025, "effective_date": "2025-11-01", "surveyed": 10,
              "satisfied": 9}
    order = {"order_id": "追1", "effective_date": "2025-05-03", "reason": "x",
             "payments": [{"account_id": official_id("x"), "movement_id": "m"}]}
    for role, region in OTHER_ROLES:
        caller = api.as_(role, region)
        body = refused(caller.post("/cases", json=case_body(case_no="C2")), 403,
                       "RoleNotPermitted", "Authorization")
        assert "inspectors only" in body["detail"], role
        refused(caller.post(f"{URL}/steps", json=item()), 403, "RoleNotPermitted")
        refused(caller.post(f"{URL}/recovery-orders", json=order), 403, "RoleNotPermitted")
        assert caller.get(URL).status_code == 200  # every role reads within its jurisdiction
        r = caller.post(f"/regions/{VILLAGE}/surveys", json=survey)
        if role == "admin":
            assert r.status_code == 201, r.text
        else:
            assert "surveys" in refused(r, 403, "RoleNotPermitted", "Authorization")["detail"]
    assert api.client.get("/cases/C2").status_code == 404  # nothing was stored


def test_a_county_b_inspector_neither_writes_nor_reads_county_a_cases(
        api: Any, world: World, county_b: str) -> None:
    api.as_("inspector", COUNTY).post("/cases", json=case_body())
    b = api.as_("inspector", county_b)
    refused(b.post("/cases", json=case_body(case_no="B1")), 403, "OutsideJurisdiction",
            "region_code")
    refused(b.post(f"{URL}/steps", json=item()), 403, "OutsideJurisdiction", "case_no")
    refused(b.get(URL), 403, "OutsideJurisdiction", "case_no")
    refused(b.get(f"{URL}/report?format=csv"), 403, "OutsideJurisdiction", "case_no")
    refused(b.get(f"/cases?region={COUNTY}"), 403, "OutsideJurisdiction", "region")
    refused(b.get(f"/metrics/{COUNTY}?year=2025"), 403, "OutsideJurisdiction", "region_code")
    refused(b.get(f"/reports/county/{COUNTY}"), 403, "OutsideJurisdiction", "code")
    refused(b.post(f"/regions/{VILLAGE}/surveys", json={
        "survey_id": "S1", "year": 2025, "effective_date": "2025-11-01", "surveyed": 10,
        "satisfied": 9}), 403, "OutsideJurisdiction", "code")
    refused(b.get(f"/accountability-actions?official_id={HEAD}"), 403, "OutsideJurisdiction",
            "official_id")
    assert b.get("/cases").json()["items"] == []
    assert b.get("/recovery/outstanding").json()["items"] == []
    assert b.get("/rectification-items").json()["items"] == []
    assert access_log(api) == []  # refused reads show nothing and record nothing


def test_a_suspended_policy_is_refused_until_the_case_is_rectified(api: Any,
                                                                   world: World) -> None:
    account = a_funded_account(world, TOWNSHIP)
    hid = a_registered_household(world, "H1")
    inspector = api.as_("inspector", COUNTY)
    officer = api.as_("fund_officer", COUNTY)
    assert inspector.post("/cases", json=case_body(suspend_policies=["hh_industry"])
                          ).status_code == 201
    assert inspector.post(f"{URL}/steps", json=item()).status_code == 201

    payment = sign(world, "FundAccount.Disbursed", account,
                   household_payment(hid, 10_000, day=D(2025, 5, 10)))
    body = refused(officer.post("/commands", json=payment), 409, "PolicySuspended",
                   "content.purpose")
    assert CASE in body["detail"]
    refused(inspector.post(f"{URL}/steps", json={"step": "rectify", "effective_date":
                                                 "2025-05-20", "summary": "整改完成"}),
            409, "RectificationOutstanding", "items")
    for step in ({"step": "complete_rectification_item", "effective_date": "2025-05-25",
                  "item_id": "R1", "evidence": "退款凭证"},
                 {"step": "rectify", "effective_date": "2025-05-26", "summary": "整改完成"}):
        r = inspector.post(f"{URL}/steps", json=step)
        assert r.status_code == 201, r.text
    assert officer.post("/commands", json=payment).status_code == 201
    view = inspector.get(URL).json()
    assert view["status"] == "rectified"
    assert view["suspensions"][0]["resumed_on"] == "2025-05-26"
    r = inspector.post(f"{URL}/steps", json={"step": "close", "effective_date": "2025-06-01",
                                             "conclusion": "结案"})
    assert r.status_code == 201
    assert inspector.get("/cases?status=closed").json()["items"][0]["case_no"] == CASE


def test_recovery_orders_outstanding_rectification_and_the_access_log(api: Any,
                                                                      world: World) -> None:
    account = a_funded_account(world, TOWNSHIP)
    hid = a_registered_household(world, "H1")
    content = household_payment(hid, 10_000)
    run(world, "FundAccount.Disbursed", account, content)
    inspector = api.as_("inspector", COUNTY, name="inspector")
    reviewer = api.as_("reviewer", COUNTY, name="reviewer")
    inspector.post("/cases", json=case_body())
    inspector.post(f"{URL}/steps", json=item("R1", "2025-06-30"))
    inspector.post(f"{URL}/steps", json={
        "step": "impose_accountability", "effective_date": "2025-06-01", "official_id": HEAD,
        "action": "admonition_talk", "decision_no": "镇纪〔2025〕诫1号", "reason": "监管不力"})
    order = {"order_id": "追1", "effective_date": "2025-05-03", "reason": "虚报冒领",
             "payments": [{"account_id": str(account), "movement_id": content["movement_id"],
                           "amount_fen": 8_000}]}
    r = inspector.post(f"{URL}/recovery-orders", json=order)
    assert r.status_code == 201, r.text
    assert inspector.post(f"{URL}/recovery-orders", json=order).status_code == 200
    refused(inspector.post(f"{URL}/recovery-orders", json={
        **order, "order_id": "追2", "payments": [{**order["payments"][0], "amount_fen": 2_001}]}),
        422, "InvalidInput", "payments[0].amount_fen")
    run(world, "FundAccount.Recovered", account, recovery(content["movement_id"], 3_001))

    found = reviewer.get("/recovery/outstanding?by=official").json()
    assert found["total"] == {"ordered_fen": 8_000, "recovered_fen": 3_001,
                              "outstanding_fen": 4_999}
    assert sorted(e["outstanding_fen"] for e in found["items"]) == [1_666, 1_666, 1_667]
    assert sum(e["recovered_fen"] for e in found["items"]) == 3_001
    by_unit = inspector.get(f"/recovery/outstanding?by=unit&region={TOWNSHIP}").json()
    assert [(e["unit_code"], e["outstanding_fen"]) for e in by_unit["items"]] == [
        (f"U{TOWNSHIP}", 4_999)]
    refused(inspector.get("/recovery/outstanding?by=colour"), 422, "InvalidInput", "by")

    run(world, "FundAccount.Disbursed", account,  # moves the log clock to 2025-07-03
        household_payment(hid, 100, day=D(2025, 7, 3), purpose="hh_education"))
    overdue = inspector.get("/rectification-items?overdue_only=true").json()
    assert [(i["item_id"], i["days_overdue"]) for i in overdue["items"]] == [("R1", 3)]
    assert inspector.get("/rectification-items?overdue_only=true&as_of=2025-06-30"
                         ).json()["items"] == []
    actions = reviewer.get(f"/accountability-actions?official_id={HEAD}").json()
    assert [(a["case_no"], a["action"]) for a in actions["actions"]] == [
        (CASE, "admonition_talk")]

    log = access_log(api)
    assert ("reviewer", "/recovery/outstanding", "case") in log
    assert ("inspector", "/rectification-items", "case") in log
    assert ("reviewer", "/accountability-actions", "case") in log
    assert ("reviewer", "/recovery/outstanding", "official") in log
    assert ("reviewer", "/accountability-actions", "official") in log
    assert ("inspector", "/rectification-items", "official") in log
    before = len(log)
    api.as_("county_approver", COUNTY).get(URL)  # every role's reads are recorded
    inspector.get(URL)
    assert access_log(api)[before:] == [("county_approver", "/cases/{case_no}", "case"),
                                        ("inspector", "/cases/{case_no}", "case")]


def test_reports_surveys_and_metrics_over_http(api: Any, world: World) -> None:
    account = a_funded_account(world, TOWNSHIP)
    hid = a_registered_household(world, "H1")
    content = household_payment(hid, 9_000)
    run(world, "FundAccount.Disbursed", account, content)
    inspector = api.as_("inspector", COUNTY)
    inspector.post("/cases", json=case_body(evidence=[
        {"kind": "payment", "ref": content["movement_id"], "account_id": str(account)}]))
    survey = {"survey_id": "S1", "year": 2025, "effective_date": "2025-11-01", "surveyed": 50,
              "satisfied": 47}
    assert inspector.post(f"/regions/{VILLAGE}/surveys", json=survey).status_code == 201
    assert inspector.post(f"/regions/{VILLAGE}/surveys", json=survey).status_code == 200
    refused(inspector.post(f"/regions/{VILLAGE}/surveys", json={**survey, "satisfied": 48}),
            422, "InvalidInput", "survey_id")

    figures = inspector.get(f"/metrics/{TOWNSHIP}?year=2025").json()
    assert figures["satisfaction"]["numerator"] == 47
    assert figures["satisfaction"]["meets"] is True
    assert [c["region_code"] for c in figures["children"]] == [VILLAGE, "522625100002"]
    refused(inspector.get(f"/metrics/{TOWNSHIP}"), 422, "InvalidInput", "year")

    r = inspector.get(f"{URL}/report?format=xlsx")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(r.content))
    facts = {row[0]: row[1] for row in book["案件概况"].iter_rows(min_row=HEADER_ROW + 1,
                                                              values_only=True)}
    assert facts["案号"] == CASE
    chain = list(book["责任链"].iter_rows(min_row=HEADER_ROW, values_only=True))
    assert chain[0][2] == "环节" and chain[0][7] == "签字角色"
    assert {(row[2], row[7]) for row in chain[1:] if row[2] == "支付"} == {
        ("支付", "经办"), ("支付", "审核"), ("支付", "审批")}
    # the .xlsx shows the payee's masked numbers: the household's read is recorded too
    assert ("inspector", "/cases/{case_no}/report", "household") in access_log(api)
    r = inspector.get(f"{URL}/report?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert read_csv(r.content, sheets=True)["人员 Persons"][0]["basis"] == "subject"
    refused(inspector.get(f"{URL}/report?format=pdf"), 422, "InvalidInput", "format")

    r = inspector.get(f"/reports/county/{COUNTY}?format=csv&year=2025")
    assert r.status_code == 200, r.text
    sheets = read_csv(r.content, sheets=True)
    assert [(c["case_no"], c["status"]) for c in sheets["案件 Cases"]] == [(CASE, "open")]
    refused(inspector.get(f"/reports/county/{TOWNSHIP}"), 422, "InvalidInput", "code")
    assert ("inspector", "/reports/county/{code}", "case") in access_log(api)


def test_flags_are_read_in_pages_within_the_jurisdiction_and_the_reads_recorded(
        api: Any, world: World, county_b: str) -> None:
    account = a_funded_account(world, TOWNSHIP)
    paid = []
    for code in ("H1", "H2"):
        hid = a_registered_household(world, code)
        content = household_payment(hid, 10_000, day=D(2025, 3, 1))
        run(world, "FundAccount.Disbursed", account, content)
        run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 2, 1)))  # backdated
        paid.append(content["movement_id"])
    wanted = sorted(f"PAY_REMOVED:{m}" for m in paid)
    inspector = api.as_("inspector", COUNTY, name="inspector")

    first = inspector.get("/flags?rule_id=PAY_REMOVED&limit=1").json()
    assert [f["flag_id"] for f in first["items"]] == wanted[:1]
    assert first["next_after"] == wanted[0]
    rest = inspector.get(f"/flags?rule_id=PAY_REMOVED&limit=1&after={first['next_after']}")
    assert [f["flag_id"] for f in rest.json()["items"]] == wanted[1:]
    assert [f["flag_id"] for f in inspector.get(
        f"/flags?rule_id=PAY_REMOVED&region={VILLAGE}&severity=high").json()["items"]] == wanted
    assert inspector.get("/flags?rule_id=PAY_REMOVED&date_from=2025-03-02").json()["items"] == []
    flag = inspector.get(f"/flags/{wanted[0]}").json()
    assert (flag["rule_id"], flag["subject_kind"], flag["region_path"]["village"]) == (
        "PAY_REMOVED", "payment", VILLAGE)
    refused(inspector.get("/flags?rule_id=NO_SUCH_RULE"), 422, "InvalidInput", "rule_id")
    refused(inspector.get("/flags/PAY_REMOVED:nothing"), 404, "NotFound", "flag_id")
    b = api.as_("reviewer", county_b)
    refused(b.get(f"/flags/{wanted[0]}"), 403, "OutsideJurisdiction", "flag_id")
    assert b.get("/flags").json()["items"] == []
    assert access_log(api) == [("inspector", "/flags", "flag")] * 4 + [
        ("inspector", "/flags/{flag_id:path}", "flag")]
