"""The cases read model (projections.cases): recovery reconciled to the fen, either order of
two aggregates stored together, rectification overdue by the log clock, 问责 per official.

Township money is prepared by the finance accountant, reviewed by the head and approved
by the party secretary (tests/factories.py), so every order line is split over those three:
equal shares, the odd fen to the approver, then the reviewer.
"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from factories import (
    read_models,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_registered_household,
    household_payment,
    official,
    official_id,
    recovery,
    reversal,
    run,
)
from projections import case_queries as cq
from projections import cases as cs
from projections import runner
from projections.tracking import dump
from store.engines import engine_for

D = dt.date
CASE = "镇纪〔2025〕3号"
INSPECTOR = "inspector:纪委 王"
APPROVER = official_id(official("party_secretary", TOWNSHIP))
REVIEWER = official_id(official("head", TOWNSHIP))
PREPARER = official_id(official("finance_accountant", TOWNSHIP))


pytestmark = pytest.mark.usefixtures("close_read_models")


def open_case(world, case_no=CASE, **kw):
    args = {"case_no": case_no, "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
            "region_code": VILLAGE, "effective_date": "2025-05-01",
            "incident_date": "2025-03-01",
            "subjects": [{"official_id": official_id(official("accountant", VILLAGE)),
                          "reason": "经办虚报"}],
            "recorded_by": INSPECTOR}
    return world.app.open_case(**{**args, **kw})


def pay(world, account, household, amount, day=D(2025, 3, 1), purpose="hh_industry"):
    content = household_payment(household, amount, day=day, purpose=purpose)
    run(world, "FundAccount.Disbursed", account, content)
    return content["movement_id"]


def order(world, order_id, *lines, case_no=CASE, day="2025-05-03"):
    return world.app.order_recovery(
        case_no, order_id=order_id, effective_date=day, reason="虚报冒领", recorded_by=INSPECTOR,
        payments=[{"account_id": str(a), "movement_id": m, **({"amount_fen": n} if n else {})}
                  for a, m, n in lines])


def money(entry):
    return entry["ordered_fen"], entry["recovered_fen"], entry["outstanding_fen"]


def test_recovery_reconciles_to_the_fen_over_partial_recoveries_two_orders_and_odd_fen(
        app, world):
    account = a_funded_account(world, TOWNSHIP)
    p1 = pay(world, account, a_registered_household(world, "H1"), 10_000)
    p2 = pay(world, account, a_registered_household(world, "H2"), 10_001)
    run(world, "FundAccount.Recovered", account, recovery(p1, 1_000, day=D(2025, 4, 1)))
    open_case(world)
    # 追1: all that is still out of p1 (9,000), and 6,001 of p2
    order(world, "追1", (account, p1, None), (account, p2, 6_001))
    run(world, "FundAccount.Recovered", account, recovery(p1, 2_500))
    run(world, "FundAccount.Recovered", account, recovery(p2, 1_000))
    order(world, "追2", (account, p2, 3_000), day="2025-07-02")  # 6,001 + 3,000 ≤ 9,001
    run(world, "FundAccount.Recovered", account, recovery(p2, 6_000, day=D(2025, 7, 3)))

    view = cq.case_view(read_models(app), CASE)
    recovery_ = view["recovery"]
    lines = {(o["order_id"], ln["movement_id"]): ln for o in recovery_["orders"]
             for ln in o["lines"]}
    # p1: 9,000 ordered, 2,500 back after the order (the 1,000 before it was never ordered)
    assert money(lines["追1", p1]) == (9_000, 2_500, 6_500)
    # p2: the 7,000 back after 追1 cover 追1's 6,001 first, then 999 of 追2
    assert money(lines["追1", p2]) == (6_001, 6_001, 0)
    assert money(lines["追2", p2]) == (3_000, 999, 2_001)
    assert money(recovery_["total"]) == (18_001, 9_500, 8_501)
    shares = {s["official_id"]: (s["ordered_fen"], s["outstanding_fen"])
              for s in lines["追1", p1]["liable"]}
    assert shares == {APPROVER: (3_000, 2_167), REVIEWER: (3_000, 2_167),
                      PREPARER: (3_000, 2_166)}
    per_official = {e["official_id"]: money(e) for e in recovery_["by_official"]}
    assert per_official == {APPROVER: (6_001, 3_167, 2_834), REVIEWER: (6_000, 3_166, 2_834),
                            PREPARER: (6_000, 3_167, 2_833)}

    by_official = cq.outstanding_recovery(read_models(app), by="official", region_code=TOWNSHIP)
    assert {e["official_id"]: money(e) for e in by_official["items"]} == per_official
    assert money(by_official["total"]) == (18_001, 9_500, 8_501)
    by_unit = cq.outstanding_recovery(read_models(app), by="unit")
    assert [(e["unit_code"], money(e)) for e in by_unit["items"]] == [
        (f"U{TOWNSHIP}", (18_001, 9_500, 8_501))]
    by_payment = {e["movement_id"]: money(e) for e in
                  cq.outstanding_recovery(read_models(app), by="payment")["items"]}
    assert by_payment == {p1: (9_000, 2_500, 6_500), p2: (9_001, 7_000, 2_001)}
    by_region = cq.outstanding_recovery(read_models(app), by="region", region_code=VILLAGE)
    assert [(e["region_code"], e["cases"]) for e in by_region["items"]] == [(VILLAGE, [CASE])]
    assert cq.outstanding_recovery(read_models(app), by="region", region_code="elsewhere")["items"] == []
    with pytest.raises(InvalidInput) as bad:
        cq.outstanding_recovery(read_models(app), by="colour")
    assert bad.value.field == "by"


def test_a_recovery_stored_before_the_order_in_one_transaction_still_covers_it(app, world):
    account = a_funded_account(world, TOWNSHIP)
    p1 = pay(world, account, a_registered_household(world, "H1"), 10_000)
    p2 = pay(world, account, a_registered_household(world, "H2"), 8_000)
    open_case(world)
    with app.batch():  # the account is stored first: its Recovered precede the order in the log
        app.load(FundAccount, account)
        order(world, "追1", (account, p1, None), (account, p2, None))
        run(world, "FundAccount.Recovered", account, recovery(p1, 4_000))
        run(world, "FundAccount.Reversed", account,
            reversal(p2, 8_000, purpose="hh_industry", day=D(2025, 5, 4)))
    lines = {ln["movement_id"]: ln for ln in
             cq.case_view(read_models(app), CASE)["recovery"]["orders"][0]["lines"]}
    assert money(lines[p1]) == (10_000, 4_000, 6_000)
    assert money(lines[p2]) == (8_000, 8_000, 0)  # reversed (冲正): the money is back

    # a rebuild from zero gives the same rows as following the log
    engine = engine_for(app.database_url)
    with engine.connect() as conn:
        before = dump(conn, cs.Cases.tables)
    runner.rebuild(app, names=["cases"], batch=7)
    with engine.connect() as conn:
        assert dump(conn, cs.Cases.tables) == before


def test_the_case_view_lists_persons_evidence_findings_actions_and_suspensions(app, world):
    account = a_funded_account(world, TOWNSHIP)
    hid = a_registered_household(world, "H1")
    p1 = pay(world, account, hid, 10_000)
    open_case(world, suspend_policies=["hh_industry"],
              evidence=[{"kind": "payment", "ref": p1, "account_id": str(account)}],
              flag_ids=[f"PAY_DUPLICATE:{p1}"])
    head = official_id(official("head", TOWNSHIP))
    step = world.app.case_step
    step(CASE, "link_evidence", items=[{"kind": "household", "ref": str(hid), "note": "冒领户"}],
         effective_date="2025-05-02", recorded_by=INSPECTOR)
    step(CASE, "record_finding", finding_id="F1", text="虚报产业补助", amount_fen=10_000,
         effective_date="2025-05-03", recorded_by=INSPECTOR)
    step(CASE, "impose_accountability", official_id=head, action="admonition_talk",
         decision_no="镇纪〔2025〕诫1号", reason="一案双查: 监管不力",
         effective_date="2025-06-01", recorded_by=INSPECTOR)
    step(CASE, "add_rectification_item", item_id="R1", problem="退回虚报资金",
         deadline="2025-06-30", unit_code=f"U{VILLAGE}",
         official_id=official_id(official("party_secretary", VILLAGE)),
         effective_date="2025-05-02", recorded_by=INSPECTOR)
    step(CASE, "add_rectification_item", item_id="R2", problem="健全公示制度",
         deadline="2025-06-10", unit_code=f"U{VILLAGE}",
         official_id=official_id(official("director", VILLAGE)),
         effective_date="2025-05-02", recorded_by=INSPECTOR)
    step(CASE, "complete_rectification_item", item_id="R2", evidence="公示照片",
         effective_date="2025-06-12", recorded_by=INSPECTOR)

    view = cq.case_view(read_models(app), CASE)
    assert (view["status"], view["case_type"], view["region_path"]["village"]) == (
        "open", "false_claim", VILLAGE)
    basis = {p["official_id"]: p["basis"] for p in view["persons"]}
    assert basis[official_id(official("accountant", VILLAGE))] == "subject"
    assert basis[head] == "oversight"
    assert [(e["kind"], e["ref"]) for e in view["evidence"]] == [("payment", p1),
                                                                 ("household", str(hid))]
    assert view["findings"] == [{"finding_id": "F1", "text": "虚报产业补助", "amount_fen": 10_000,
                                 "recorded_on": "2025-05-03"}]
    assert [(a["code"], a["action"]) for a in view["actions"]] == [
        (official("head", TOWNSHIP), "admonition_talk")]
    assert view["suspensions"] == [{"village": VILLAGE, "purposes": ["hh_industry"],
                                    "suspended_on": "2025-05-01", "resumed_on": None}]
    # the log clock is 2025-06-12 (the latest business date): R1 is not overdue yet,
    # R2 was completed two days late
    items = {i["item_id"]: (i["status"], i["days_overdue"])
             for i in view["rectification"]["items"]}
    assert items == {"R1": ("open", None), "R2": ("completed_late", 2)}
    assert cq.rectification_items(read_models(app), overdue_only=True)["items"] == []
    # a payment dated 2025-07-05 moves the log clock past R1's deadline
    pay(world, account, hid, 1_000, day=D(2025, 7, 5), purpose="hh_education")
    overdue = cq.rectification_items(read_models(app), overdue_only=True, region_code=TOWNSHIP)
    assert overdue["as_of"] == "2025-07-05"
    assert [(i["item_id"], i["days_overdue"], i["official"]["code"]) for i in overdue["items"]] \
        == [("R1", 5, official("party_secretary", VILLAGE))]
    as_of = cq.rectification_items(read_models(app), overdue_only=True, as_of=D(2025, 6, 15))
    assert as_of["items"] == []
    assert cq.rectification_items(read_models(app), as_of=D(2025, 7, 1))["items"][1]["status"] == "overdue"

    step(CASE, "complete_rectification_item", item_id="R1", evidence="退款凭证",
         effective_date="2025-07-06", recorded_by=INSPECTOR)
    step(CASE, "rectify", effective_date="2025-07-07", summary="整改完成", recorded_by=INSPECTOR)
    view = cq.case_view(read_models(app), CASE)
    assert (view["status"], view["rectified_on"]) == ("rectified", "2025-07-07")
    assert view["suspensions"][0]["resumed_on"] == "2025-07-07"

    actions = cq.official_actions(read_models(app), head)
    assert [(a["case_no"], a["action"], a["decision_no"]) for a in actions["actions"]] == [
        (CASE, "admonition_talk", "镇纪〔2025〕诫1号")]
    assert [(c["case_no"], c["basis"]) for c in actions["cases"]] == [(CASE, "oversight")]
    assert cq.official_actions(read_models(app), PREPARER)["actions"] == []
    with pytest.raises(NotFound) as unknown:
        cq.official_actions(read_models(app), "00000000-0000-0000-0000-000000000000")
    assert unknown.value.field == "official_id"


def test_cases_are_listed_in_pages_by_region_and_status(app, world):
    for n in range(3):
        open_case(world, case_no=f"C{n}", title=f"案{n}")
    open_case(world, case_no="T1", region_code=TOWNSHIP, title="镇")
    world.app.case_step("C1", "close", effective_date="2025-06-01", conclusion="结案",
                        recorded_by=INSPECTOR)
    engine = read_models(app)
    first = cq.list_cases(engine, limit=2)
    assert [c["case_no"] for c in first["items"]] == ["C0", "C1"]
    rest = cq.list_cases(engine, limit=2, after=first["next_after"])
    assert [c["case_no"] for c in rest["items"]] == ["C2", "T1"] and rest["next_after"] is None
    assert [c["case_no"] for c in cq.list_cases(engine, region_code=VILLAGE)["items"]] == [
        "C0", "C1", "C2"]
    assert [c["case_no"] for c in cq.list_cases(engine, status="closed")["items"]] == ["C1"]
    assert cq.case_counts(engine, TOWNSHIP) == [
        {"status": "closed", "case_type": "false_claim", "cases": 1},
        {"status": "open", "case_type": "false_claim", "cases": 3}]
    with pytest.raises(NotFound) as missing:
        cq.case_view(engine, "nope")
    assert missing.value.field == "case_no"


def test_settle_covers_each_cases_lines_first_in_first_out():
    payment = {"amount_fen": 100, "returns": [[5, 30, "recovered", "2025-01-01"],
                                              [9, 50, "recovered", "2025-01-02"]]}
    a1 = {"case_id": "A", "order_id": "1", "line_no": 0, "amount_fen": 60, "log_position": 3}
    a2 = {"case_id": "A", "order_id": "2", "line_no": 0, "amount_fen": 10, "log_position": 7}
    b1 = {"case_id": "B", "order_id": "1", "line_no": 0, "amount_fen": 70, "log_position": 6}
    cs.settle(payment, [a1, a2, b1])
    # A: 30 after 追1 → 追1; at 追2, 40 named of 70 still out: nothing extra; 50 → 30 + 10
    assert (a1["recovered_fen"], a2["recovered_fen"]) == (60, 10)
    # B ordered 70 when 70 was still out: only the 50 after it count
    assert b1["recovered_fen"] == 50
