"""线索处置 through the HTTP API, on both stores: a register uploaded (dry run, confirm), its
match raised as a lead, 交办 with a deadline in working days on the Chinese calendar
(国庆 2025 and its 调休), 核实 → 反馈 → 审核 → 立案 (the case carries the lead's evidence),
a lead found 不属实 kept with its reasons and its evidence not raised again, overdue
leads, statistics per unit, and the leads read model identical after a rebuild.
"""

from __future__ import annotations

import datetime as dt

import pytest
from api_support import refused
from factories import COUNTY, VILLAGE, a_funded_account, official, official_id
from test_compare import csv, imported, pay, person, registered

from domain.lead import Lead, lead_move
from inspection.workdays import add_working_days, is_working_day, working_days_between
from projections import runner
from projections.leads import Leads
from projections.tracking import dump
from store.engines import engine_for

D = dt.date
UNIT = f"U{VILLAGE}"
ACCOUNTANT = official_id(official("accountant", VILLAGE))

pytestmark = pytest.mark.usefixtures("close_read_models")


def test_working_days_follow_the_chinese_calendar_with_its_adjusted_days():
    assert not is_working_day(D(2025, 10, 1)) and not is_working_day(D(2025, 10, 8))
    assert is_working_day(D(2025, 10, 11)), "Saturday 11 October 2025 was worked (调休)"
    assert is_working_day(D(2026, 2, 14)), "Saturday 14 February 2026 was worked (调休)"
    assert add_working_days(D(2025, 9, 30), 1) == D(2025, 10, 9)
    assert add_working_days(D(2025, 9, 30), 3) == D(2025, 10, 11)
    assert add_working_days(D(2026, 2, 12), 2) == D(2026, 2, 14)
    assert working_days_between(D(2025, 9, 30), D(2025, 10, 11)) == 3
    assert add_working_days(D(2027, 1, 1), 1) == D(2027, 1, 4), "no notice yet: Mon–Fri"


def step(inspector, lead_id, **body):
    return inspector.post(f"/leads/{lead_id}/steps", json=body)


def test_a_match_carried_from_lead_to_case_and_an_unfounded_one_not_raised_again(app, world,
                                                                                   api):
    a_funded_account(world)
    h1 = registered(world, "H1")
    registered(world, "H2")
    paid = pay(world, h1, D(2025, 3, 2))
    inspector = api.as_("inspector", COUNTY, name="县纪委 王")
    data = csv(["姓名", "证件号码", "死亡日期"], ["甲", person("H1", "spouse"), "2025-03-01"],
               ["乙", "123", "2025-03-01"])
    form = {"department": "县公安局", "kind": "death", "as_of": "2025-06-30"}
    files = {"file": ("死亡人员.csv", data, "text/csv")}
    dry = inspector.post("/registers", data=form, files=files)
    assert dry.status_code == 200, dry.text
    assert (dry.json()["rows_kept"], dry.json()["rows_refused"], dry.json()["recorded"]) == \
        (1, 1, False)
    assert person("H1", "spouse") not in dry.text
    refused(api.as_("reviewer", COUNTY).post("/registers", data=form, files=files), 403,
            "RoleNotPermitted")
    done = inspector.post("/registers", data={**form, "confirm": "true"}, files=files)
    assert done.status_code == 201 and done.json()["recorded"] is True
    assert {m["model_id"] for m in inspector.get("/compare/models").json()["models"]} >= {
        "COMPARE_PAID_AFTER_DEATH", "COMPARE_PAYROLL_MEMBER"}
    found = inspector.get("/compare/matches").json()["items"]
    assert [(m["model_id"], m["detail"]["movement_id"]) for m in found] == [
        ("COMPARE_PAID_AFTER_DEATH", paid)]
    match_id = found[0]["match_id"]
    assert inspector.get(f"/compare/matches/{match_id}").json()["match_id"] == match_id
    # 立 a lead; the same evidence again is the same lead
    r = inspector.post("/leads", json={"source_kind": "match", "source_ref": match_id,
                                       "effective_date": "2025-09-29"})
    assert r.status_code == 201, r.text
    lead_id = r.json()["lead_id"]
    again = inspector.post("/leads", json={"source_kind": "match", "source_ref": match_id,
                                           "effective_date": "2025-09-30"})
    assert again.status_code == 200 and again.json()["lead_id"] == lead_id
    refused(step(inspector, lead_id, step="verify", effective_date="2025-09-30",
                 verdict="founded", reasons="x"), 409, "StepOutOfOrder")
    a = step(inspector, lead_id, step="assign", effective_date="2025-09-30", unit_code=UNIT,
             official_id=ACCOUNTANT, working_days=1)
    assert a.status_code == 201 and a.json()["deadline"] == "2025-10-09", a.text
    overdue = inspector.get("/leads", params={"overdue_only": "true", "as_of": "2025-10-10"})
    assert [x["lead_id"] for x in overdue.json()["items"]] == [lead_id]
    assert inspector.get("/leads", params={"overdue_only": "true",
                                           "as_of": "2025-10-09"}).json()["items"] == []
    assert step(inspector, lead_id, step="verify", effective_date="2025-10-09",
                verdict="founded", reasons="死亡后仍发放", amount_fen=10_000).status_code == 201
    assert step(inspector, lead_id, step="report", effective_date="2025-10-09",
                report="已核实属实").status_code == 201
    assert step(inspector, lead_id, step="review", effective_date="2025-10-10",
                accepted=True, opinion="同意").status_code == 201
    c = step(inspector, lead_id, step="open_case", effective_date="2025-10-10",
             case_no="县纪〔2025〕9号", case_type="false_claim", title="死亡后冒领产业补助",
             conclusion="立案审查")
    assert c.status_code == 201, c.text
    case = inspector.get("/cases/县纪〔2025〕9号").json()
    assert {"kind": "payment", "ref": paid} in [{"kind": e["kind"], "ref": e["ref"]}
                                               for e in case["evidence"]]
    assert any(e["kind"] == "document" and e["ref"].startswith("线索 XS-")
               for e in case["evidence"])
    view = inspector.get(f"/leads/{lead_id}").json()
    assert view["status"] == "closed" and view["disposition"] == "case_opened"
    assert [m["step"] for m in view["moves"]] == ["Raised", "Assigned", "Verified",
                                                  "Reported", "Reviewed", "Closed"]
    assert all(m["recorded_by"].startswith("县纪委 王 (inspector, token ") for m in view["moves"])
    refused(step(inspector, lead_id, step="report", effective_date="2025-10-11", report="x"),
            409, "LeadClosed")
    # a second lead, from a payroll match, found 不属实: kept, and not raised again
    imported(app, "payroll", csv(["姓名", "证件号码", "工作单位"], ["乙", person("H2"), "县医院"]),
             department="县财政局")
    payroll = inspector.get("/compare/matches",
                            params={"model_id": "COMPARE_PAYROLL_MEMBER"}).json()["items"]
    second = inspector.post("/leads", json={"source_kind": "match",
                                            "source_ref": payroll[0]["match_id"],
                                            "effective_date": "2025-10-10"}).json()["lead_id"]
    for body in ({"step": "assign", "unit_code": UNIT, "official_id": ACCOUNTANT,
                  "working_days": 5},
                 {"step": "verify", "verdict": "unfounded", "reasons": "同名不同人，已辞职"},
                 {"step": "report", "report": "不属实"},
                 {"step": "review", "accepted": True, "opinion": "同意了结"}):
        assert step(inspector, second, effective_date="2025-10-13", **body).status_code == 201
    refused(step(inspector, second, step="close", effective_date="2025-10-13",
                 disposition="talk_inquiry", conclusion="x"), 422, "InvalidInput", "disposition")
    assert step(inspector, second, step="close", effective_date="2025-10-13",
                disposition="concluded", conclusion="予以了结").status_code == 201
    r = inspector.post("/leads", json={"source_kind": "match",
                                       "source_ref": payroll[0]["match_id"],
                                       "effective_date": "2025-10-14"})
    refused(r, 409, "LeadUnfounded")
    assert "同名不同人" in r.text
    stats = inspector.get("/leads/statistics", params={"as_of": "2025-10-20"}).json()
    unit = {u["unit_code"]: u for u in stats["units"]}[UNIT]
    assert (unit["leads"], unit["verified"], unit["founded"], unit["founded_rate"],
            unit["cases_opened"], unit["overdue"]) == (2, 2, 1, 0.5, 1, 0)
    assert stats["total"]["leads"] == 2
    # the leads' read model is the same after a rebuild
    engine = engine_for(app.database_url)
    runner.catch_up(app, names=["leads"])
    with engine.connect() as conn:
        incremental = dump(conn, Leads.tables)
    runner.rebuild(app, names=["leads"])
    with engine.connect() as conn:
        assert dump(conn, Leads.tables) == incremental
    assert len(incremental["lead_moves"]) == 12


def test_a_review_sends_a_lead_back_to_verify_again(app, world):
    from domain.lead import raise_lead

    lid = raise_lead(app, source_kind="flag", source_ref="PAY_REMOVED:x", rule_id="PAY_REMOVED",
                     severity="high", region_code=VILLAGE, region_path={"village": VILLAGE},
                     summary="向已清退户发放资金", evidence=[], signers=[],
                     effective_date=D(2025, 5, 6), recorded_by="王")["lead_id"]
    who = {"recorded_by": "王"}
    lead_move(app, lid, "assign", unit_code=UNIT, official_id=ACCOUNTANT, working_days=3,
              deadline=add_working_days(D(2025, 5, 6), 3), effective_date=D(2025, 5, 6), **who)
    lead_move(app, lid, "verify", verdict="partly", reasons="部分属实",
              effective_date=D(2025, 5, 7), **who)
    lead_move(app, lid, "report", report="反馈", effective_date=D(2025, 5, 7), **who)
    lead_move(app, lid, "review", accepted=False, opinion="证据不足，重新核实",
              effective_date=D(2025, 5, 8), **who)
    assert app.load(Lead, lid).status == "assigned"
    lead_move(app, lid, "verify", verdict="founded", reasons="补充证据后属实",
              effective_date=D(2025, 5, 9), **who)
    assert app.load(Lead, lid).verdict == "founded"


def test_the_flags_ledger_state_carries_the_leads_disposition():
    from exchange.ledgers import lead_state

    assert lead_state("在办", None) == "在办"
    lead = {"lead_no": "XS-0A1B2C3D4E", "status": "closed", "unit_code": UNIT,
            "deadline": "2025-10-09", "verdict": "founded", "disposition": "case_opened",
            "case_no": "县纪〔2025〕9号"}
    assert lead_state("已立案（县纪〔2025〕9号）", lead) == (
        f"已立案（县纪〔2025〕9号）；线索XS-0A1B2C3D4E：已办结，交办{UNIT}（期限2025-10-09），"
        "核实属实，立案（县纪〔2025〕9号）")
