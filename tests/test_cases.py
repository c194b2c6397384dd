"""Cases (案件): 一案双查, policy suspension until rectified, recovery charged to signers.

The world's officials (tests/factories.py): at the village an accountant (经办, handling),
party secretary (第一责任), director and first secretary (直接责任); at the township a
poverty officer and a finance accountant (经办), the head and the party secretary (第一责任).
Township money is prepared by the finance accountant, reviewed by the head, approved by
the party secretary.
"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.case import PolicySuspended, RectificationOutstanding, split_liability
from domain.errors import AlreadyExists, InvalidInput, NotFound
from factories import (
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_registered_household,
    household_payment,
    id_number,
    official,
    official_id,
    recovery,
    run,
)

D = dt.date
ACCOUNTANT = official("accountant", VILLAGE)
INSPECTOR = "inspector:纪委 王"


def open_case(world, **kw):
    args = {"case_no": "镇纪〔2025〕3号", "case_type": "false_claim",
            "title": "坪地村产业补助虚报冒领", "region_code": VILLAGE,
            "effective_date": "2025-05-01", "incident_date": "2025-03-01",
            "subjects": [{"official_id": official_id(ACCOUNTANT), "reason": "经办虚报"}],
            "recorded_by": INSPECTOR}
    args.update(kw)
    return world.app.open_case(**args)


def persons(world, case_no="镇纪〔2025〕3号"):
    return world.app.case(case_no).persons


def test_one_case_two_investigations_adds_the_leaders_of_the_village_and_the_township(world):
    open_case(world)

    found = persons(world)
    by_basis = {oid: p["basis"] for oid, p in found.items()}
    assert by_basis == {
        official_id(ACCOUNTANT): "subject",
        official_id(official("party_secretary", VILLAGE)): "oversight",
        official_id(official("director", VILLAGE)): "oversight",
        official_id(official("first_secretary", VILLAGE)): "oversight",
        official_id(official("party_secretary", TOWNSHIP)): "oversight",
        official_id(official("head", TOWNSHIP)): "oversight",
    }
    reason = found[official_id(official("head", TOWNSHIP))]["reason"]
    assert "一案双查" in reason and TOWNSHIP in reason and "township_head" in reason


def test_leaders_are_those_who_held_the_post_on_the_incident_date(world):
    app = world.app
    new_secretary = "party_secretary_2@" + VILLAGE
    app.register_official(new_secretary, "新书记", f"U{VILLAGE}", id_number(9001))
    old = official("party_secretary", VILLAGE)
    app.leave_position(old, "village_party_secretary", VILLAGE, D(2025, 4, 1))
    app.take_position(new_secretary, "village_party_secretary", VILLAGE, D(2025, 4, 1))

    open_case(world, incident_date="2025-03-01")
    open_case(world, case_no="B2", incident_date="2025-04-15")

    assert official_id(old) in persons(world)
    assert official_id(new_secretary) not in persons(world)
    assert official_id(new_secretary) in persons(world, "B2")
    assert official_id(old) not in persons(world, "B2")


def test_a_case_against_a_township_leader_adds_the_county_leaders_not_the_subject_twice(world):
    head = official("head", TOWNSHIP)
    open_case(world, case_no="C1", region_code=TOWNSHIP,
              subjects=[{"official_id": official_id(head), "reason": "审核把关不严"}])

    found = persons(world, "C1")
    assert found[official_id(head)]["basis"] == "subject"
    assert found[official_id(official("party_secretary", TOWNSHIP))]["basis"] == "oversight"
    county_leaders = {p["position"] for p in found.values() if p["basis"] == "oversight"
                      and p["region_code"] != TOWNSHIP}
    # deputy magistrate (直接), poverty office director (直接), finance director (领导)
    assert county_leaders == {"deputy_county_magistrate", "county_poverty_office_director",
                              "county_finance_director"}


def test_opening_refuses_bad_input_naming_the_field(world):
    with pytest.raises(InvalidInput) as bad_type:
        open_case(world, case_type="corruption")
    assert bad_type.value.field == "case_type"
    with pytest.raises(InvalidInput) as late:
        open_case(world, incident_date="2025-06-01")
    assert late.value.field == "incident_date"
    with pytest.raises(NotFound) as who:
        open_case(world, subjects=[{"official_id": official_id("nobody"), "reason": "x"}])
    assert who.value.field == "subjects[0].official_id"
    with pytest.raises(InvalidInput) as township_suspension:
        open_case(world, region_code=TOWNSHIP, suspend_policies=["hh_industry"])
    assert township_suspension.value.field == "suspend_policies"
    with pytest.raises(InvalidInput) as forbidden:
        open_case(world, suspend_policies=["admin_expenses"])
    assert forbidden.value.field == "suspend_policies[0]"


def test_opening_again_is_a_no_op_and_a_different_case_with_the_same_number_is_refused(world):
    assert open_case(world)["recorded"] is True
    assert open_case(world)["recorded"] is False
    with pytest.raises(AlreadyExists):
        open_case(world, title="另一件事")


def test_payments_of_a_suspended_policy_are_refused_until_the_case_is_rectified(world):
    account = a_funded_account(world, TOWNSHIP)
    hh = a_registered_household(world, "H1")
    other = a_registered_household(world, "H2", village=OTHER_VILLAGE)
    open_case(world, suspend_policies=["hh_industry"])
    app = world.app
    app.case_step("镇纪〔2025〕3号", "add_rectification_item", item_id="R1",
                  problem="退回虚报资金", deadline="2025-06-30", unit_code=f"U{VILLAGE}",
                  official_id=official_id(official("party_secretary", VILLAGE)),
                  effective_date="2025-05-02", recorded_by=INSPECTOR)

    with pytest.raises(PolicySuspended) as refused:
        run(world, "FundAccount.Disbursed", account,
            household_payment(hh, 10_000, day=D(2025, 5, 10)))
    assert refused.value.field == "content.purpose"
    assert "镇纪〔2025〕3号" in refused.value.message
    # other policies, and other villages, are not suspended
    run(world, "FundAccount.Disbursed", account,
        household_payment(hh, 5_000, day=D(2025, 5, 10), purpose="hh_education"))
    run(world, "FundAccount.Disbursed", account,
        household_payment(other, 5_000, day=D(2025, 5, 10)))

    with pytest.raises(RectificationOutstanding):
        app.case_step("镇纪〔2025〕3号", "rectify", effective_date="2025-05-20",
                      summary="整改完成", recorded_by=INSPECTOR)
    app.case_step("镇纪〔2025〕3号", "complete_rectification_item", item_id="R1",
                  evidence="退款凭证 镇财追〔2025〕1号", effective_date="2025-05-25",
                  recorded_by=INSPECTOR)
    app.case_step("镇纪〔2025〕3号", "rectify", effective_date="2025-05-26",
                  summary="整改完成", recorded_by=INSPECTOR)

    run(world, "FundAccount.Disbursed", account,
        household_payment(hh, 10_000, day=D(2025, 5, 27)))
    assert world.balance(account) == 1_000_000 - 5_000 - 5_000 - 10_000


def test_a_case_that_suspends_policies_cannot_close_before_rectification(world):
    open_case(world, suspend_policies=["hh_industry"])
    with pytest.raises(RectificationOutstanding):
        world.app.case_step("镇纪〔2025〕3号", "close", effective_date="2025-06-01",
                            conclusion="结案", recorded_by=INSPECTOR)
    world.app.case_step("镇纪〔2025〕3号", "rectify", effective_date="2025-06-01",
                        summary="整改完成", recorded_by=INSPECTOR)
    assert world.app.case_step("镇纪〔2025〕3号", "close", effective_date="2025-06-02",
                               conclusion="结案", recorded_by=INSPECTOR)["recorded"] is True
    assert world.app.case("镇纪〔2025〕3号").status == "closed"


def test_the_liability_split_gives_the_odd_fen_to_approver_then_reviewer():
    signers = [{"official_id": "p", "role": "preparer"}, {"official_id": "r", "role": "reviewer"},
               {"official_id": "a", "role": "approver"}]
    assert split_liability(1000, signers) == [
        {"official_id": "a", "role": "approver", "share_fen": 334},
        {"official_id": "r", "role": "reviewer", "share_fen": 333},
        {"official_id": "p", "role": "preparer", "share_fen": 333}]
    assert [s["share_fen"] for s in split_liability(1001, signers)] == [334, 334, 333]
    two_roles = [{"official_id": "x", "role": "preparer"}, {"official_id": "x", "role": "approver"},
                 {"official_id": "y", "role": "reviewer"}, {"official_id": "w", "role": "witness"}]
    assert split_liability(7, two_roles) == [
        {"official_id": "x", "role": "approver", "share_fen": 4},
        {"official_id": "y", "role": "reviewer", "share_fen": 3}]


def test_a_recovery_order_charges_the_signers_of_each_payment(world):
    account = a_funded_account(world, TOWNSHIP)
    hh = a_registered_household(world, "H1")
    pay = household_payment(hh, 10_000, day=D(2025, 3, 1))
    run(world, "FundAccount.Disbursed", account, pay)
    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 1_000))
    open_case(world)

    world.app.order_recovery("镇纪〔2025〕3号", order_id="追1", effective_date="2025-05-03",
                             reason="虚报冒领", recorded_by=INSPECTOR,
                             payments=[{"account_id": str(account),
                                        "movement_id": pay["movement_id"]}])

    order = world.app.case("镇纪〔2025〕3号").orders["追1"]
    assert order["total_fen"] == 9_000  # what was still out
    assert [(s["official_id"], s["role"], s["share_fen"]) for s in order["payments"][0]["liable"]] \
        == [(official_id(official("party_secretary", TOWNSHIP)), "approver", 3_000),
            (official_id(official("head", TOWNSHIP)), "reviewer", 3_000),
            (official_id(official("finance_accountant", TOWNSHIP)), "preparer", 3_000)]
    with pytest.raises(InvalidInput) as too_much:
        world.app.order_recovery("镇纪〔2025〕3号", order_id="追2", effective_date="2025-05-03",
                                 reason="再追", recorded_by=INSPECTOR,
                                 payments=[{"account_id": str(account), "amount_fen": 1,
                                            "movement_id": pay["movement_id"]}])
    assert too_much.value.field == "payments[0].amount_fen"
    with pytest.raises(NotFound) as unknown:
        world.app.order_recovery("镇纪〔2025〕3号", order_id="追3", effective_date="2025-05-03",
                                 reason="x", recorded_by=INSPECTOR,
                                 payments=[{"account_id": str(account),
                                            "movement_id": "00000000-0000-0000-0000-000000000001"}])
    assert unknown.value.field == "payments[0].movement_id"


def test_accountability_is_imposed_on_a_person_under_review_only(world):
    open_case(world)
    app = world.app
    app.case_step("镇纪〔2025〕3号", "impose_accountability",
                  official_id=official_id(official("head", TOWNSHIP)),
                  action="admonition_talk", decision_no="镇纪〔2025〕诫1号",
                  reason="一案双查: 监管不力", effective_date="2025-06-01", recorded_by=INSPECTOR)
    with pytest.raises(InvalidInput) as outsider:
        app.case_step("镇纪〔2025〕3号", "impose_accountability",
                      official_id=official_id(official("poverty_officer", TOWNSHIP)),
                      action="criticism", decision_no="x", reason="y",
                      effective_date="2025-06-01", recorded_by=INSPECTOR)
    assert outsider.value.field == "official_id"
    assert app.case("镇纪〔2025〕3号").actions[0]["action"] == "admonition_talk"


def test_satisfaction_surveys_are_recorded_once(world):
    app = world.app
    assert app.record_survey(VILLAGE, survey_id="S2025", year=2025, effective_date="2025-11-01",
                             surveyed=50, satisfied=47, recorded_by=INSPECTOR)["recorded"]
    assert not app.record_survey(VILLAGE, survey_id="S2025", year=2025,
                                 effective_date="2025-11-01", surveyed=50, satisfied=47,
                                 recorded_by=INSPECTOR)["recorded"]
    with pytest.raises(InvalidInput) as bad:
        app.record_survey(VILLAGE, survey_id="S2", year=2025, effective_date="2025-11-01",
                          surveyed=5, satisfied=6, recorded_by=INSPECTOR)
    assert bad.value.field == "satisfied"


def test_events_are_stamped_with_the_applications_clock_not_the_system_clock(world):
    when = dt.datetime(2025, 5, 1, 8, 30, tzinfo=dt.UTC)
    world.app.clock = lambda: when
    open_case(world)
    world.app.record_survey(VILLAGE, survey_id="S1", year=2025, effective_date="2025-05-01",
                            surveyed=3, satisfied=3, recorded_by=INSPECTOR)
    case = world.app.case("镇纪〔2025〕3号")
    region_events = world.app.stored_events(world.app.region(VILLAGE).id)
    assert [e.timestamp for e in world.app.stored_events(case.id)] == [when]
    assert region_events[-1].timestamp == when
    # outside a verb of the application, eventsourcing's own clock is untouched
    from eventsourcing.domain import CanCreateTimestamp
    assert CanCreateTimestamp.create_timestamp() != when
