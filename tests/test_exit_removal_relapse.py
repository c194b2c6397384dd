"""Exit (脱贫退出), removal (清退) and relapse (返贫).

Exit: proposal (income above the year's line, 两不愁三保障 all met) → village appraisal →
the household head's confirmation (witnessed) → notice → township verification → county
approval → exited.  Removal takes a wrongly registered household off the register with a
reason; relapse puts an exited household back on it."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import ExitChecksFailed, InvalidInput, NoticePeriodNotElapsed, StepOutOfOrder
from domain.household import EXIT_CHECKS, INCOME_LINES_FEN, Household, Status
from factories import (
    EXITED_ON,
    REGISTERED_ON,
    VILLAGE,
    a_household_through,
    a_registered_household,
    a_removed_household,
    all_checks_met,
    an_exited_household,
    event_names,
    exit_steps,
    head_name,
    last_event,
    official,
    removal,
    run,
)

D = dt.date
LINE_2025 = INCOME_LINES_FEN[2025]


def proposal(income_fen: int = 800_000, line_fen: int = LINE_2025, checks: dict | None = None,
             year: int = 2025) -> dict:
    return {"year": year, "effective_date": "2025-11-01", "income_per_capita_fen": income_fen,
            "income_line_fen": line_fen, "checks": all_checks_met() if checks is None else checks}


def a_household_through_exit(world, steps: int, code: str = "H1"):
    hid = a_registered_household(world, code)
    for step, content in exit_steps(code)[:steps]:
        run(world, step, hid, content)
    return hid


def test_exit_follows_every_step_to_exited(world):
    hid = a_registered_household(world)

    for step, content in exit_steps("H1"):
        assert world.app.load(Household, hid).status is not Status.EXITED
        run(world, step, hid, content)

    names = event_names(world.app, hid)
    assert names[7:] == [f"Household.{n}" for n in (
        "ExitProposed", "ExitAppraised", "ExitConfirmedByHousehold", "NoticePosted",
        "ExitVerifiedByTownship", "ExitApprovedByCounty")]
    household = world.app.load(Household, hid)
    assert household.status is Status.EXITED
    assert household.exit_year == 2025
    assert household.status_on(EXITED_ON) is Status.EXITED
    assert household.status_on(EXITED_ON - dt.timedelta(days=1)) is Status.REGISTERED
    proposed = world.app.stored_events(hid)[7]
    assert (proposed.income_per_capita_fen, proposed.income_line_fen) == (800_000, LINE_2025)
    assert proposed.checks == all_checks_met()


@pytest.mark.parametrize("failing", EXIT_CHECKS)
def test_exit_refused_when_any_two_no_worries_three_guarantees_check_fails(world, failing):
    hid = a_registered_household(world)

    with pytest.raises(ExitChecksFailed) as refused:
        run(world, "Household.ExitProposed", hid,
            proposal(checks={**all_checks_met(), failing: False}))

    assert refused.value.field == "checks"
    assert refused.value.details["failed"] == [failing]
    assert len(world.app.stored_events(hid)) == 7


@pytest.mark.parametrize("income_fen", [LINE_2025, LINE_2025 - 1, 0],
                         ids=["at_the_line", "below_the_line", "no_income"])
def test_exit_refused_when_income_not_above_the_line_of_year(world, income_fen):
    hid = a_registered_household(world)

    with pytest.raises(ExitChecksFailed) as refused:
        run(world, "Household.ExitProposed", hid, proposal(income_fen=income_fen))

    assert refused.value.field == "income_per_capita_fen"
    assert world.app.load(Household, hid).status is Status.REGISTERED


def test_exit_refused_against_a_line_lower_than_the_years_table(world):
    hid = a_registered_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ExitProposed", hid,
            proposal(income_fen=LINE_2025, line_fen=LINE_2025 - 100_000))
    assert refused.value.field == "income_line_fen"


def test_exit_measured_against_a_higher_local_line_than_the_table(world):
    hid = a_registered_household(world)

    with pytest.raises(ExitChecksFailed):
        run(world, "Household.ExitProposed", hid, proposal(income_fen=790_000, line_fen=800_000))
    run(world, "Household.ExitProposed", hid, proposal(income_fen=810_000, line_fen=800_000))

    assert last_event(world.app, hid).income_line_fen == 800_000


def test_exit_refused_for_a_year_without_a_known_line(world):
    hid = a_registered_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ExitProposed", hid, proposal(year=2031))
    assert refused.value.field == "year"


def test_exit_checks_must_answer_every_item(world):
    hid = a_registered_household(world)
    checks = all_checks_met()
    del checks["safe_drinking_water"]

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ExitProposed", hid, proposal(checks=checks))
    assert refused.value.field == "checks"


def test_exit_proposal_refused_for_a_household_not_registered(world):
    hid = a_household_through(world, 5)

    with pytest.raises(StepOutOfOrder):
        run(world, "Household.ExitProposed", hid, proposal())


def test_household_head_confirmation_must_name_the_head(world):
    hid = a_household_through_exit(world, 2)
    step, content = exit_steps("H1")[2]

    with pytest.raises(InvalidInput) as refused:
        run(world, step, hid, {**content, "confirmed_by": "H1配偶"})
    assert refused.value.field == "confirmed_by"

    run(world, step, hid, content)
    confirmed = last_event(world.app, hid)
    assert confirmed.confirmed_by == head_name("H1")
    assert [(s["role"], s["position"]) for s in confirmed.signatures] == [
        ("witness", "village_first_secretary")]


def test_household_head_confirmation_is_witnessed_not_prepared(world):
    hid = a_household_through_exit(world, 2)
    step, content = exit_steps("H1")[2]

    with pytest.raises(InvalidInput) as refused:
        run(world, step, hid, content,
            by={"witness": None, "preparer": official("accountant", VILLAGE)})
    assert refused.value.field == "signatures[0].role"


def test_exit_appraisal_without_majority_keeps_the_household_registered(world):
    hid = a_household_through_exit(world, 1)

    run(world, "Household.ExitAppraised", hid,
        {"effective_date": "2025-11-02", "votes_for": 10, "votes_against": 20, "votes_total": 33})

    assert world.app.load(Household, hid).status is Status.REGISTERED
    step, content = exit_steps("H1")[2]
    with pytest.raises(StepOutOfOrder):
        run(world, step, hid, content)


def test_township_exit_verification_refused_before_exit_notice_has_run_seven_days(world):
    hid = a_household_through_exit(world, 4)  # exit notice posted 2025-11-04

    with pytest.raises(NoticePeriodNotElapsed) as refused:
        run(world, "Household.ExitVerifiedByTownship", hid,
            {"effective_date": "2025-11-10", "opinion": "核实达标"})
    assert refused.value.field == "effective_date"


def test_upheld_objection_during_exit_notice_keeps_the_household_registered(world):
    hid = a_household_through_exit(world, 4)
    run(world, "Household.ObjectionRaised", hid,
        {"objection_id": "OBJ-9", "effective_date": "2025-11-05", "summary": "收入未达标"})

    run(world, "Household.ObjectionResolved", hid,
        {"objection_id": "OBJ-9", "effective_date": "2025-11-07", "upheld": True,
         "resolution": "经核实收入不稳定, 暂缓退出"})

    assert world.app.load(Household, hid).status is Status.REGISTERED


def test_county_exit_approval_refused_before_township_verification(world):
    hid = a_household_through_exit(world, 4)
    step, content = exit_steps("H1")[5]

    with pytest.raises(StepOutOfOrder):
        run(world, step, hid, content)


def test_removal_takes_a_household_off_the_register_with_its_reason(world):
    hid = a_registered_household(world)

    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 6, 1), "家庭成员有财政供养人员"))

    removed = last_event(world.app, hid)
    assert type(removed).__qualname__ == "Household.RemovedFromRegister"
    assert removed.reason == "家庭成员有财政供养人员"
    assert [(s["role"], s["position"]) for s in removed.signatures] == [
        ("preparer", "township_poverty_officer"), ("reviewer", "township_head"),
        ("approver", "deputy_county_magistrate")]
    household = world.app.load(Household, hid)
    assert household.status is Status.REMOVED
    assert household.status_on(D(2025, 5, 31)) is Status.REGISTERED
    assert household.status_on(D(2025, 6, 1)) is Status.REMOVED


def test_removal_needs_a_reason(world):
    hid = a_registered_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 6, 1), " "))
    assert refused.value.field == "reason"


def test_removal_dated_before_the_registration_is_refused(world):
    """Else the register's history would read 'registered' after the removal, and a removed
    household could be paid (regression)."""
    hid = a_registered_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.RemovedFromRegister", hid,
            removal(REGISTERED_ON - dt.timedelta(days=1)))

    assert refused.value.field == "effective_date"
    assert world.app.load(Household, hid).status_on(D(2026, 1, 1)) is Status.REGISTERED


def test_removal_applies_to_exited_households_too(world):
    hid = an_exited_household(world)

    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 12, 1)))

    assert world.app.load(Household, hid).status is Status.REMOVED


def test_removal_refused_for_a_household_never_registered(world):
    hid = a_household_through(world, 3)

    with pytest.raises(StepOutOfOrder):
        run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 6, 1)))


def relapse(day: str = "2026-03-01") -> dict:
    return {"effective_date": day, "cause": "illness", "income_per_capita_fen": 300_000}


def test_relapse_puts_an_exited_household_back_on_the_register(world):
    hid = an_exited_household(world)

    run(world, "Household.Relapsed", hid, relapse())

    relapsed = last_event(world.app, hid)
    assert type(relapsed).__qualname__ == "Household.Relapsed"
    assert (relapsed.cause, relapsed.income_per_capita_fen) == ("illness", 300_000)
    household = world.app.load(Household, hid)
    assert household.status is Status.REGISTERED
    assert household.relapses == 1
    assert household.status_on(D(2026, 2, 28)) is Status.EXITED
    assert household.status_on(D(2026, 3, 1)) is Status.REGISTERED


def test_relapse_dated_before_the_exit_is_refused(world):
    hid = an_exited_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.Relapsed", hid,
            relapse((EXITED_ON - dt.timedelta(days=1)).isoformat()))

    assert refused.value.field == "effective_date"
    assert world.app.load(Household, hid).status is Status.EXITED


def test_exit_proposal_dated_before_the_registration_is_refused(world):
    hid = a_registered_household(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ExitProposed", hid,
            {**proposal(), "effective_date": (REGISTERED_ON - dt.timedelta(days=1)).isoformat()})
    assert refused.value.field == "effective_date"


def test_annual_review_may_be_recorded_for_a_date_before_the_last_procedure_step(world):
    """Assistance records (一年一评, helpers) sit beside the procedure, not in its order."""
    hid = an_exited_household(world)

    run(world, "Household.AnnualReviewRecorded", hid,
        {"year": 2025, "effective_date": "2025-10-31", "income_per_capita_fen": 800_000,
         "members_count": 2, "notes": ""})

    assert last_event(world.app, hid).effective_date == D(2025, 10, 31)


@pytest.mark.parametrize("given", ["registered", "removed"])
def test_relapse_only_from_exited(world, given):
    hid = a_registered_household(world) if given == "registered" else a_removed_household(world)

    with pytest.raises(StepOutOfOrder) as refused:
        run(world, "Household.Relapsed", hid, relapse())
    assert refused.value.details["status"] == given


def test_registration_history_keeps_every_business_date(world):
    hid = an_exited_household(world)
    run(world, "Household.Relapsed", hid, relapse())

    household = world.app.load(Household, hid)
    assert household.status_on(REGISTERED_ON - dt.timedelta(days=1)) is None
    assert household.status_on(REGISTERED_ON) is Status.REGISTERED
    assert household.status_on(EXITED_ON) is Status.EXITED
