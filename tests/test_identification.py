"""Identification (精准识别): application → appraisal → verification → first notice →
township review → second notice → county approval.  A household is registered only after
county approval; every step is a signed event; steps out of order are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import (
    AlreadyExists,
    InvalidInput,
    NoticePeriodNotElapsed,
    NotFound,
    ObjectionsOutstanding,
    StepOutOfOrder,
)
from domain.household import Household, Status
from factories import (
    APPLIED_ON,
    REGISTERED_ON,
    TOWNSHIP,
    VILLAGE,
    a_household_applied,
    a_household_through,
    a_registered_household,
    application,
    event_names,
    identification_steps,
    last_event,
    official,
    official_id,
    run,
    sign,
)

D = dt.date
STEPS = identification_steps()


def steps_named(*names: str) -> list[str]:
    return [f"Household.{n}" for n in names]


def test_household_is_registered_only_after_county_approval_with_every_step_in_order(world):
    hid = a_household_applied(world)

    for step, content in STEPS:
        assert world.app.load(Household, hid).status is not Status.REGISTERED
        assert run(world, step, hid, content)["recorded"] is True

    household = world.app.load(Household, hid)
    assert household.status is Status.REGISTERED
    assert household.status_on(REGISTERED_ON) is Status.REGISTERED
    assert household.status_on(REGISTERED_ON - dt.timedelta(days=1)) is None
    events = world.app.stored_events(hid)
    assert [type(e).__qualname__ for e in events] == steps_named(
        "Applied", "AppraisedByVillage", "VerifiedByVillage", "NoticePosted",
        "ReviewedByTownship", "NoticePosted", "ApprovedByCounty")
    assert [e.round for e in events if type(e).__qualname__ == "Household.NoticePosted"] == [
        "first", "second"]
    assert [e.effective_date for e in events] == [APPLIED_ON] + [
        D.fromisoformat(c["effective_date"]) for _, c in STEPS]
    approved = events[-1]
    assert approved.announcement_no == "镇府〔2025〕3号"
    assert {(s["role"], s["position"]) for s in approved.signatures} == {
        ("preparer", "county_poverty_office_staff"),
        ("reviewer", "county_poverty_office_director"),
        ("approver", "deputy_county_magistrate")}


def test_application_records_members_by_keyed_hash_never_the_id_number(world):
    hid = a_household_applied(world)

    applied = world.app.stored_events(hid)[0]
    assert type(applied).__qualname__ == "Household.Applied"
    assert [m["relation"] for m in applied.members] == ["head", "spouse"]
    assert all(len(m["id_number_hash"]) == 64 for m in applied.members)
    assert applied.signatures[0]["official_id"] == official_id(official("accountant", VILLAGE))
    assert applied.signatures[0]["position"] == "village_accountant"


@pytest.mark.parametrize("skipped", range(1, len(STEPS)), ids=[s for s, _ in STEPS[1:]])
def test_each_identification_step_is_refused_when_the_step_before_it_is_missing(world, skipped):
    hid = a_household_through(world, skipped - 1)
    before = event_names(world.app, hid)
    step, content = STEPS[skipped]

    with pytest.raises(StepOutOfOrder) as refused:
        run(world, step, hid, content)

    assert refused.value.field == "step"
    assert event_names(world.app, hid) == before


def test_appraisal_is_refused_once_the_procedure_has_moved_on(world):
    hid = a_household_through(world, 2)

    with pytest.raises(StepOutOfOrder):
        run(world, "Household.AppraisedByVillage", hid,
            {"effective_date": "2025-01-08", "votes_for": 20, "votes_against": 0,
             "votes_total": 35})


def test_county_approval_is_refused_straight_after_application(world):
    hid = a_household_applied(world)
    step, content = STEPS[-1]

    with pytest.raises(StepOutOfOrder) as refused:
        run(world, step, hid, content)
    assert refused.value.details["status"] == "applied"


def test_public_notice_shorter_than_seven_days_is_refused(world):
    hid = a_household_through(world, 2)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.NoticePosted", hid,
            {"round": "first", "effective_date": "2025-01-08", "days": 6})
    assert refused.value.field == "days"
    assert event_names(world.app, hid)[-1] == "Household.VerifiedByVillage"


def test_township_review_refused_before_first_notice_has_run_seven_days(world):
    hid = a_household_through(world, 3)  # first notice posted 2025-01-08 for 7 days

    with pytest.raises(NoticePeriodNotElapsed) as refused:
        run(world, "Household.ReviewedByTownship", hid,
            {"effective_date": "2025-01-14", "opinion": "同意"})
    assert refused.value.field == "effective_date"

    assert run(world, "Household.ReviewedByTownship", hid,
               {"effective_date": "2025-01-15", "opinion": "同意"})["recorded"]


def test_county_approval_refused_before_second_notice_has_run_seven_days(world):
    hid = a_household_through(world, 5)  # second notice posted 2025-01-16 for 7 days

    with pytest.raises(NoticePeriodNotElapsed) as refused:
        run(world, "Household.ApprovedByCounty", hid,
            {"effective_date": "2025-01-22", "announcement_no": "镇府〔2025〕3号"})
    assert refused.value.field == "effective_date"
    assert world.app.load(Household, hid).status is Status.SECOND_NOTICE


def test_longer_notice_delays_the_next_step_to_its_own_end(world):
    hid = a_household_through(world, 2)
    run(world, "Household.NoticePosted", hid,
        {"round": "first", "effective_date": "2025-01-08", "days": 10})

    with pytest.raises(NoticePeriodNotElapsed):
        run(world, "Household.ReviewedByTownship", hid,
            {"effective_date": "2025-01-17", "opinion": "同意"})


def objection(oid: str = "OBJ-1", day: str = "2025-01-09") -> dict:
    return {"objection_id": oid, "effective_date": day, "summary": "该户有家庭成员在县城经商"}


def resolution(oid: str = "OBJ-1", upheld: bool = False, day: str = "2025-01-12") -> dict:
    return {"objection_id": oid, "effective_date": day, "upheld": upheld,
            "resolution": "经核实反映不属实" if not upheld else "经核实反映属实"}


def test_unresolved_objection_blocks_township_review(world):
    hid = a_household_through(world, 3)
    run(world, "Household.ObjectionRaised", hid, objection())

    with pytest.raises(ObjectionsOutstanding) as refused:
        run(world, "Household.ReviewedByTownship", hid,
            {"effective_date": "2025-01-15", "opinion": "同意"})
    assert refused.value.field == "step"

    run(world, "Household.ObjectionResolved", hid, resolution(upheld=False))
    run(world, "Household.ReviewedByTownship", hid,
        {"effective_date": "2025-01-15", "opinion": "同意"})
    assert event_names(world.app, hid)[-3:] == steps_named(
        "ObjectionRaised", "ObjectionResolved", "ReviewedByTownship")


def test_upheld_objection_rejects_the_application(world):
    hid = a_household_through(world, 3)
    run(world, "Household.ObjectionRaised", hid, objection())

    run(world, "Household.ObjectionResolved", hid, resolution(upheld=True))

    resolved = last_event(world.app, hid)
    assert type(resolved).__qualname__ == "Household.ObjectionResolved" and resolved.upheld is True
    assert resolved.signatures[0]["position_region"] == TOWNSHIP
    assert world.app.load(Household, hid).status is Status.REJECTED
    with pytest.raises(StepOutOfOrder):
        run(world, "Household.ReviewedByTownship", hid,
            {"effective_date": "2025-01-15", "opinion": "同意"})


def test_objection_is_refused_outside_a_public_notice(world):
    hid = a_household_through(world, 2)

    with pytest.raises(StepOutOfOrder):
        run(world, "Household.ObjectionRaised", hid, objection())


def test_objection_resolution_needs_an_open_objection(world):
    hid = a_household_through(world, 3)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ObjectionResolved", hid, resolution("OBJ-404"))
    assert refused.value.field == "objection_id"


@pytest.mark.parametrize("votes_for", [10, 12], ids=["minority", "tie"])
def test_appraisal_without_majority_rejects_the_application(world, votes_for):
    hid = a_household_applied(world)

    run(world, "Household.AppraisedByVillage", hid,
        {"effective_date": "2025-01-06", "votes_for": votes_for, "votes_against": 10,
         "votes_total": 24})

    appraised = last_event(world.app, hid)
    assert type(appraised).__qualname__ == "Household.AppraisedByVillage"
    assert (appraised.votes_for, appraised.votes_total) == (votes_for, 24)
    assert world.app.load(Household, hid).status is Status.REJECTED
    step, content = STEPS[1]
    with pytest.raises(StepOutOfOrder):
        run(world, step, hid, content)


def test_appraisal_votes_must_add_up(world):
    hid = a_household_applied(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.AppraisedByVillage", hid,
            {"effective_date": "2025-01-06", "votes_for": 20, "votes_against": 10,
             "votes_total": 24})
    assert refused.value.field == "votes_total"


def test_retrying_an_accepted_step_with_identical_content_is_a_no_op(world):
    hid = a_household_applied(world)
    step, content = STEPS[0]
    command = sign(world, step, hid, content)
    assert world.app.execute(command)["recorded"] is True

    assert world.app.execute(command)["recorded"] is False
    assert world.app.execute(sign(world, step, hid, dict(content)))["recorded"] is False
    assert event_names(world.app, hid) == steps_named("Applied", "AppraisedByVillage")


def test_retrying_the_application_with_identical_content_is_a_no_op(world):
    hid = a_household_applied(world)
    content = application(world, "H1")

    result = run(world, "Household.Applied", hid, content)

    assert result == {"step": "Household.Applied", "subject": str(hid), "recorded": False}
    assert event_names(world.app, hid) == ["Household.Applied"]


def test_retrying_an_earlier_step_after_the_procedure_moved_on_is_a_no_op(world):
    hid = a_household_through(world, 3)
    step, content = STEPS[0]

    assert run(world, step, hid, content)["recorded"] is False
    assert len(world.app.stored_events(hid)) == 4


def test_same_household_code_with_different_content_is_refused(world):
    hid = a_household_applied(world)

    with pytest.raises(AlreadyExists) as refused:
        run(world, "Household.Applied", hid, application(world, "H1", income_fen=260_000))
    assert refused.value.field == "content.household_code"
    assert event_names(world.app, hid) == ["Household.Applied"]


def test_application_is_made_in_a_village(world):
    content = application(world, "H1", village=TOWNSHIP)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.Applied", Household.create_id("H1"), content,
            where=world.app.region(TOWNSHIP).path | {"village": TOWNSHIP})
    assert refused.value.field == "content.village_code"


def test_application_names_exactly_one_household_head(world):
    content = application(world, "H1")
    content["members"][1]["relation"] = "head"

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.Applied", Household.create_id("H1"), content)
    assert refused.value.field == "members"


def test_application_never_carries_a_clear_id_number(world):
    content = application(world, "H1")
    content["members"][0]["id_number_hash"] = "522625198001010011"

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.Applied", Household.create_id("H1"), content)
    assert refused.value.field == "members[0].id_number_hash"


def test_step_dated_before_the_application_is_refused(world):
    hid = a_household_applied(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.AppraisedByVillage", hid,
            {"effective_date": "2025-01-04", "votes_for": 30, "votes_against": 0,
             "votes_total": 35})
    assert refused.value.field == "effective_date"


def test_step_dated_before_the_previous_step_is_refused(world):
    """The procedure never goes back in time: verification before the appraisal is refused."""
    hid = a_household_through(world, 1)  # appraised 2025-01-06

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.VerifiedByVillage", hid,
            {"effective_date": "2025-01-05", "findings": "入户核实属实"})
    assert refused.value.field == "effective_date"


def test_objection_is_resolved_no_earlier_than_it_was_raised(world):
    hid = a_household_through(world, 3)
    run(world, "Household.ObjectionRaised", hid, objection(day="2025-01-10"))

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.ObjectionResolved", hid, resolution(day="2025-01-09"))
    assert refused.value.field == "effective_date"


def test_helper_is_assigned_only_to_a_registered_household(world):
    helper = official_id(official("director", VILLAGE))
    applied = a_household_applied(world, "H2")
    with pytest.raises(StepOutOfOrder):
        run(world, "Household.HelperAssigned", applied,
            {"official_id": helper, "effective_date": "2025-02-01"})

    hid = a_registered_household(world)
    run(world, "Household.HelperAssigned", hid,
        {"official_id": helper, "effective_date": "2025-02-01"})

    assigned = last_event(world.app, hid)
    assert type(assigned).__qualname__ == "Household.HelperAssigned"
    assert assigned.official_id == helper
    assert world.app.load(Household, hid).helper_official_id == helper


def test_helper_must_be_a_known_official(world):
    hid = a_registered_household(world)

    with pytest.raises(NotFound) as refused:
        run(world, "Household.HelperAssigned", hid,
            {"official_id": official_id("nobody"), "effective_date": "2025-02-01"})
    assert refused.value.field == "content.official_id"


def test_annual_review_records_the_years_income(world):
    hid = a_registered_household(world)

    run(world, "Household.AnnualReviewRecorded", hid,
        {"year": 2025, "effective_date": "2025-12-20", "income_per_capita_fen": 690_000,
         "members_count": 2, "notes": "务工收入增加"})

    review = last_event(world.app, hid)
    assert type(review).__qualname__ == "Household.AnnualReviewRecorded"
    assert (review.year, review.income_per_capita_fen) == (2025, 690_000)
    assert world.app.load(Household, hid).income_per_capita_fen == 690_000
