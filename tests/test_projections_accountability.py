"""Responsibility chains, liability (谁签字谁负责, 谁签字谁追回), the register and the village view.

Signers are the world's defaults (tests/factories.py): identification at the county is
prepared by the poverty office staff, reviewed by its director and approved by the deputy
magistrate; township money by the finance accountant, the head and the party secretary.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import event

from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.official import Official
from domain.signing import b64
from factories import (
    read_models,
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_household_applied,
    a_registered_household,
    an_exited_household,
    exit_steps,
    household_payment,
    id_number,
    key_for,
    official,
    official_id,
    recovery,
    removal,
    reversal,
    run,
)
from projections import chains, queries

D = dt.date
T = str(FundAccount.create_id(TOWNSHIP, "central"))
DEPUTY = official("deputy_magistrate", COUNTY)
ACCOUNTANT = official("finance_accountant", TOWNSHIP)


pytestmark = pytest.mark.usefixtures("close_read_models")


def pay(world, household, amount, day=None):
    content = household_payment(household, amount, day=day or D(2025, 3, 1))
    run(world, "FundAccount.Disbursed", T, content)
    return content["movement_id"]


def relapse(world, hid, day="2025-12-01"):
    run(world, "Household.Relapsed", hid, {"effective_date": day, "cause": "illness",
                                            "income_per_capita_fen": 300_000})


# chains ------------------------------------------------------------------------------------
def test_household_chain_lists_every_step_with_role_position_and_key(app, world):
    hid = str(a_registered_household(world, "H1"))
    chain = chains.household_chain(read_models(app), hid)
    assert chain["status"] == "registered"
    assert [s["step"] for s in chain["steps"]] == [
        "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
        "Household.NoticePosted", "Household.ReviewedByTownship", "Household.NoticePosted",
        "Household.ApprovedByCounty"]
    approval = chain["steps"][-1]
    assert approval["status_after"] == "registered" and approval["effective_date"] == "2025-01-23"
    assert [(s["role"], s["code"], s["position"], s["responsibility"], s["key_id"])
            for s in approval["signatures"]] == [
        ("preparer", official("poverty_staff", COUNTY), "county_poverty_office_staff", "handling",
         key_for(official("poverty_staff", COUNTY)).key_id),
        ("reviewer", official("poverty_director", COUNTY), "county_poverty_office_director",
         "direct", key_for(official("poverty_director", COUNTY)).key_id),
        ("approver", DEPUTY, "deputy_county_magistrate", "direct", key_for(DEPUTY).key_id)]


def test_event_chain_by_log_position(app, world):
    hid = str(a_household_applied(world, "H1"))
    chain = chains.household_chain(read_models(app), hid)
    position = chain["steps"][0]["log_position"]
    event = chains.event_chain(read_models(app), position)
    assert (event["step"], event["originator_id"], event["version"]) == (
        "Household.Applied", hid, 1)
    assert [s["code"] for s in event["signatures"]] == [official("accountant", VILLAGE)]
    with pytest.raises(NotFound):
        chains.event_chain(read_models(app), 10**9)


def test_payment_chain_from_receipt_to_payee_registration_and_recovery(app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 1_000_000)
    p = pay(world, hid, 200_000)
    run(world, "FundAccount.Recovered", T, recovery(p, 50_000))
    chain = chains.payment_chain(read_models(app), p)
    assert chain["payment"]["amount_fen"] == 200_000
    assert [s["role"] for s in chain["payment"]["signatures"]] == [
        "preparer", "reviewer", "approver"]
    [funding] = chain["funding"]
    assert funding["amount_fen"] == 150_000  # what the payee still holds
    assert [s["step"] for s in funding["steps"]] == ["FundAccount.Received"]
    assert funding["steps"][0]["signatures"][0]["code"] == ACCOUNTANT
    assert [s["step"] for s in chain["payee"]["registration"]][-1] == "Household.ApprovedByCounty"
    assert chain["payee"]["registration"][-1]["signatures"][-1]["code"] == DEPUTY
    [later] = chain["later"]
    assert (later["step"], later["amount_fen"]) == ("FundAccount.Recovered", 50_000)
    assert later["signatures"][0]["code"] == ACCOUNTANT


def test_chain_shows_a_signing_key_revoked_after_the_signature(app, world):
    hid = str(a_household_applied(world, "H1"))
    accountant = official("accountant", VILLAGE)
    app.revoke_key(accountant, key_for(accountant).key_id, D(2025, 2, 1), "key lost")
    [applied] = chains.household_chain(read_models(app), hid)["steps"]
    assert applied["signatures"][0]["key_revoked_on"] == "2025-02-01"


# liability --------------------------------------------------------------------------------------
@pytest.fixture
def liabilities(world):
    """H1 removed after two payments (one partly recovered); H2 exited then relapsed; H3 paid
    once and the payment reversed."""
    a_funded_account(world, TOWNSHIP, 5_000_000)
    h1, h3 = str(a_registered_household(world, "H1")), str(a_registered_household(world, "H3"))
    p1, p2 = pay(world, h1, 100_000), pay(world, h1, 300_000, D(2025, 4, 1))
    run(world, "FundAccount.Recovered", T, recovery(p1, 100_000))
    run(world, "FundAccount.Recovered", T, recovery(p2, 50_000))
    run(world, "Household.RemovedFromRegister", h1, removal(D(2025, 6, 1)))
    h2 = str(an_exited_household(world, "H2"))
    relapse(world, h2)
    p3 = pay(world, h3, 70_000)
    run(world, "FundAccount.Reversed", T, reversal(p3, 70_000, purpose="hh_industry"))
    return {"H1": h1, "H2": h2, "H3": h3, "P1": p1, "P2": p2, "P3": p3}


def test_approver_answers_for_households_later_removed_and_exits_later_relapsed(app, world,
                                                                                 liabilities):
    view = chains.official_liability(read_models(app), official_id(DEPUTY))
    assert view["official"]["code"] == DEPUTY
    assert view["households_approved"]["count"] == 3
    assert view["exits_approved"]["count"] == 1
    removed = view["later"]["households_removed"]["items"]
    assert [(h["household_id"], h["removed_on"], h["removal_reason"]) for h in removed] == [
        (liabilities["H1"], "2025-06-01", "家庭成员为财政供养人员")]
    relapsed = view["later"]["exits_relapsed"]["items"]
    assert [(h["household_id"], h["relapsed_on"]) for h in relapsed] == [
        (liabilities["H2"], "2025-12-01")]


def test_payment_signer_answers_for_recoveries_reversals_and_what_is_still_out(app, world,
                                                                              liabilities):
    view = chains.official_liability(read_models(app), official_id(ACCOUNTANT))
    steps = {(r["step"], r["role"]): r for r in view["signed"]["by_step"]}
    assert steps[("FundAccount.Disbursed", "preparer")]["count"] == 3
    assert steps[("FundAccount.Disbursed", "preparer")]["amount_fen"] == 470_000
    later = view["later"]
    assert [p["movement_id"] for p in later["payments_reversed"]["items"]] == [liabilities["P3"]]
    assert {p["movement_id"] for p in later["payments_recovered"]["items"]} == {
        liabilities["P1"], liabilities["P2"]}
    due = later["payments_to_removed_households_outstanding"]
    assert [(p["movement_id"], p["outstanding_fen"]) for p in due["items"]] == [
        (liabilities["P2"], 250_000)]
    assert due["outstanding_fen"] == 250_000


def test_red_flags_on_what_an_official_signed_are_part_of_their_liability(app, world,
                                                                         liabilities):
    h4 = str(a_registered_household(world, "H4"))
    late = pay(world, h4, 20_000, D(2025, 7, 10))
    run(world, "Household.RemovedFromRegister", h4, removal(D(2025, 7, 1)))  # found out later

    flagged = chains.official_liability(read_models(app), official_id(ACCOUNTANT))["later"]["flagged"]
    paid_removed = [f for f in flagged["items"] if f["rule_id"] == "PAY_REMOVED"]
    # raised by the removal, on its business date
    assert [(f["subject_id"], f["effective_date"]) for f in paid_removed] == [
        (late, "2025-07-01")]
    assert flagged["by_rule"]["PAY_REMOVED"] == 1
    assert flagged["count"] == sum(flagged["by_rule"].values())
    # the county approved the household but signed no payment: not theirs to answer for
    deputy = chains.official_liability(read_models(app), official_id(DEPUTY))["later"]["flagged"]
    assert "PAY_REMOVED" not in deputy["by_rule"]
    # outside the period asked for, the flag is not listed
    before = chains.official_liability(read_models(app), official_id(ACCOUNTANT),
                                       date_to=D(2025, 6, 30))["later"]["flagged"]
    assert "PAY_REMOVED" not in before["by_rule"]


def test_liability_over_a_period_counts_only_what_was_signed_in_it(app, world, liabilities):
    view = chains.official_liability(read_models(app), official_id(ACCOUNTANT),
                                     date_from=D(2025, 3, 15), date_to=D(2025, 4, 30))
    steps = {(r["step"], r["role"]): r["count"] for r in view["signed"]["by_step"]}
    assert steps == {("FundAccount.Disbursed", "preparer"): 1}
    with pytest.raises(NotFound):
        chains.official_liability(read_models(app), str(Official.create_id("nobody")))


# the register and the village view --------------------------------------------------------------
def test_register_follows_the_household_through_exit_and_relapse(app, world):
    hid = str(a_registered_household(world, "H1"))
    for step, content in exit_steps("H1"):
        run(world, step, hid, content)
    relapse(world, hid)
    h = queries.household_view(read_models(app), hid)
    assert (h["status"], h["registered_on"], h["exited_on"], h["relapse_count"]) == (
        "registered", "2025-01-23", "2025-11-12", 1)
    assert [x["status"] for x in h["history"]][-3:] == ["exit_verified", "exited", "registered"]
    assert h["members_count"] == 2 and h["main_cause"] == "illness"


def test_appraisal_voted_down_rejects_and_exit_voted_down_stays_registered(app, world):
    rejected = str(a_household_applied(world, "H1"))
    run(world, "Household.AppraisedByVillage", rejected,
        {"effective_date": "2025-01-06", "votes_for": 10, "votes_against": 20, "votes_total": 35})
    stays = str(a_registered_household(world, "H2"))
    for step, content in exit_steps("H2")[:1]:
        run(world, step, stays, content)
    run(world, "Household.ExitAppraised", stays,
        {"effective_date": "2025-11-02", "votes_for": 3, "votes_against": 30, "votes_total": 33})
    assert queries.household_view(read_models(app), rejected)["status"] == "rejected"
    assert queries.household_view(read_models(app), stays)["status"] == "registered"


def a_village_of(app, code, population):
    """A village with its own officials (keys from factories.key_for) and a population."""
    app.create_region(code, "新村", "village", TOWNSHIP, population)
    app.establish_unit(f"U{code}", "新村村委会", "village_committee", code)
    for n, (short, kind) in enumerate((("accountant", "village_accountant"),
                                       ("party_secretary", "village_party_secretary"),
                                       ("director", "village_director"),
                                       ("first_secretary", "village_first_secretary"))):
        who = official(short, code)
        app.register_official(who, who, f"U{code}", id_number(900 + n + int(code[-3:]) * 10))
        app.take_position(who, kind, code, D(2020, 1, 1))
        app.register_key(who, b64(key_for(who).public_bytes), D(2020, 1, 1))


def test_village_view_counts_statuses_and_computes_incidence_where_population_is_known(app, world):
    a_village_of(app, "522625100009", 100)
    hid = str(a_registered_household(world, "H1", village="522625100009"))
    removed = str(a_registered_household(world, "H2", village="522625100009"))
    run(world, "Household.RemovedFromRegister", removed, removal(D(2025, 6, 1)))
    run(world, "Household.HelperAssigned", hid,
        {"official_id": official_id(official("director", "522625100009")),
         "effective_date": "2025-02-01"})
    view = queries.village_view(read_models(app), "522625100009")
    assert view["households"] == {"applied": 2, "registered": 1, "exited": 0, "removed": 1,
                                  "relapsed": 0, "rejected": 0, "in_identification": 0}
    assert view["people"]["registered"] == 2
    assert view["incidence"] == 0.02
    readiness = view["exit_readiness"]
    assert readiness["western_province"] is True  # 52 贵州: the 3% line
    assert [c["met"] for c in readiness["criteria"]] == [True, "unknown", "unknown"]
    assert readiness["ready"] == "unknown"
    director = official("director", "522625100009")
    assert view["assistance_cadres"] == [
        {"official_id": official_id(director), "name": director, "households": 1}]
    assert queries.village_view(read_models(app), VILLAGE)["incidence"] is None  # population unknown


@pytest.mark.parametrize("population", [0, 12.5, True])
def test_a_region_population_is_a_positive_whole_number_or_not_given(app, population):
    with pytest.raises(InvalidInput) as refused:
        app.create_region("99", "省", "province", None, population)
    assert refused.value.field == "population"


@pytest.mark.parametrize(("incidence", "province", "met"), [
    (0.025, "52", True), (0.025, "33", False), (0.015, "99", True), (0.025, "99", "unknown"),
    (0.031, "99", False), (None, "52", "unknown")])
def test_incidence_criterion_uses_the_western_line_only_where_the_province_is_western(
        incidence, province, met):
    assert queries.exit_readiness(incidence, province)["criteria"][0]["met"] == met


def test_every_answer_is_plain_json_on_both_stores(app, world, liabilities):
    engine = read_models(app)
    h1, p2 = liabilities["H1"], liabilities["P2"]
    answers = [
        queries.balances(engine, as_of=D(2025, 12, 31)), queries.balance_summary(engine, COUNTY),
        queries.household_view(engine, h1), queries.village_view(engine, VILLAGE),
        queries.positions(engine), chains.household_money(engine, h1),
        chains.household_chain(engine, h1), chains.payment_chain(engine, p2),
        chains.money_up(engine, p2), chains.official_liability(engine, official_id(DEPUTY)),
        chains.official_liability(engine, official_id(ACCOUNTANT)),
    ]
    receipt = [m for m in app.load(FundAccount, T).movements.items() if m[1]["kind"] == "received"]
    answers.append(chains.money_down(engine, receipt[0][0]))
    for answer in answers:
        assert json.loads(json.dumps(answer, ensure_ascii=False)) == answer


def test_main_queries_search_indexes_and_never_scan_a_growing_table(app, world, liabilities):
    """At national scale a scan is a timeout: every statement of the main queries must
    find its rows through an index (SQLite's plan says SEARCH, not SCAN)."""
    if not app.database_url.startswith("sqlite"):
        pytest.skip("reads SQLite query plans")
    engine = read_models(app)
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        chains.household_money(engine, liabilities["H1"])
        chains.payment_chain(engine, liabilities["P2"])
        chains.official_liability(engine, official_id(ACCOUNTANT))
        chains.household_chain(engine, liabilities["H1"])
        queries.village_view(engine, VILLAGE)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    small = ("trace_accounts", "resp_keys", "resp_officials", "register_officials")
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            scans = [row[-1] for row in plan if row[-1].startswith("SCAN")
                     and not any(t in row[-1] for t in small) and "CONSTANT ROW" not in row[-1]]
            assert not scans, f"{statement}\n{scans}"
