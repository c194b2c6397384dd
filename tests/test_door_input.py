"""Bounds at the door (``domain.limits``): business dates in a documented window, texts and
numbers of bounded size, no unknown fields in a command — each refusal an ``InvalidInput``
naming the field and the bound, and nothing stored.

A payment dated 9999-12-31 once stopped every projection for good; a 20 MB
``document_no`` was stored for good.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from api_support import refused
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_household_through,
    a_registered_household,
    application,
    household_payment,
    official,
    official_id,
    removal,
    run,
    sign,
)

from domain.errors import InvalidInput
from domain.limits import (
    CODE_MAX,
    DOCUMENT_MAX,
    NAME_MAX,
    PROGRAMME_START,
    REGION_CODE_MAX,
    TEXT_MAX,
)

D = dt.date
CASE = "镇纪〔2025〕9号"
INSPECTOR = "inspector:纪委 王"
RECORDED = dt.datetime(2025, 6, 30, 20, 0, tzinfo=dt.UTC)  # 2025-07-01 04:00 in China


@pytest.fixture
def paying(world: World) -> dict[str, Any]:
    """A funded township account and a registered household; record time 2025-07-01 (CST)."""
    hid = a_registered_household(world, "H1")
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    world.app.clock = lambda: RECORDED
    return {"household": hid, "account": account}


def events(world: World) -> int:
    return world.app.recorder.max_notification_id()


def refused_step(world: World, step: str, subject: Any, content: dict, field: str) -> str:
    """The step is refused naming ``field``, and nothing is stored; the message."""
    before = events(world)
    with pytest.raises(InvalidInput) as refusal:
        run(world, step, subject, content)
    assert refusal.value.field == field, refusal.value
    assert events(world) == before
    return refusal.value.message


# business dates -----------------------------------------------------------------------------
def test_a_payment_dated_9999_12_31_is_refused_naming_the_window(world: World,
                                                                  paying: dict) -> None:
    message = refused_step(world, "FundAccount.Disbursed", paying["account"],
                           household_payment(paying["household"], 1_000, day=D(9999, 12, 31)),
                           "effective_date")
    assert "9999-12-31" in message and "2013-01-01 to 2025-07-02" in message


def test_business_dates_run_from_2013_to_the_record_date_plus_one_day(world: World,
                                                                      paying: dict) -> None:
    pay = paying["account"], paying["household"]
    refused_step(world, "FundAccount.Disbursed", pay[0],
                 household_payment(pay[1], 1_000, day=PROGRAMME_START - dt.timedelta(days=1)),
                 "effective_date")
    refused_step(world, "FundAccount.Disbursed", pay[0],
                 household_payment(pay[1], 1_000, day=D(2025, 7, 3)), "effective_date")
    assert run(world, "FundAccount.Disbursed", pay[0],
               household_payment(pay[1], 1_000, day=D(2025, 7, 2)))["recorded"]
    refused_step(world, "Household.RemovedFromRegister", pay[1], removal(D(2030, 1, 1)),
                 "effective_date")


def open_case(world: World, **kw: Any) -> dict:
    args = {"case_no": CASE, "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
            "region_code": VILLAGE, "effective_date": "2025-05-01",
            "incident_date": "2025-03-01", "recorded_by": INSPECTOR, **kw}
    return world.app.open_case(**args)


def rectification_item(world: World, deadline: str, item: str = "R1") -> dict:
    return world.app.case_step(
        CASE, "add_rectification_item", item_id=item, problem="退回虚报资金",
        deadline=deadline, unit_code=f"U{VILLAGE}",
        official_id=official_id(official("party_secretary", VILLAGE)),
        effective_date="2025-05-02", recorded_by=INSPECTOR)


def test_cases_surveys_and_positions_have_their_windows(world: World, paying: dict) -> None:
    app = world.app
    for field, kw in (("effective_date", {"effective_date": "2025-07-05"}),
                      ("incident_date", {"incident_date": "2012-06-01"})):
        with pytest.raises(InvalidInput) as bad:
            open_case(world, **kw)
        assert bad.value.field == field
    open_case(world)
    # a deadline is a plan: up to five years after the record date (2025-07-01)
    assert rectification_item(world, "2030-07-01")["recorded"]
    with pytest.raises(InvalidInput) as bad:
        rectification_item(world, "2030-07-02", "R2")
    assert bad.value.field == "deadline" and "2030-07-01" in bad.value.message
    with pytest.raises(InvalidInput) as bad:
        app.record_survey(VILLAGE, survey_id="S1", year=9999, effective_date="2025-06-01",
                          surveyed=5, satisfied=5, recorded_by=INSPECTOR)
    assert bad.value.field == "year"
    with pytest.raises(InvalidInput) as bad:
        app.take_position(official("director", VILLAGE), "village_party_secretary", VILLAGE,
                          D(9999, 12, 31))
    assert bad.value.field == "start"


def test_a_notice_runs_at_most_ninety_days(world: World) -> None:
    hid = a_household_through(world, 2)
    message = refused_step(world, "Household.NoticePosted", hid,
                           {"round": "first", "effective_date": "2025-01-08",
                            "days": 10**9}, "days")
    assert "at most 90 days" in message


# texts and numbers -----------------------------------------------------------------------
def test_texts_are_bounded_by_kind_naming_the_field(world: World, paying: dict) -> None:
    account, hid = paying["account"], paying["household"]
    long_doc = household_payment(hid, 1_000, day=D(2025, 6, 1),
                                 document_no="镇" * (DOCUMENT_MAX + 1))
    refused_step(world, "FundAccount.Disbursed", account, long_doc, "document_no")
    fits = household_payment(hid, 1_000, day=D(2025, 6, 1), document_no="镇" * DOCUMENT_MAX)
    assert run(world, "FundAccount.Disbursed", account, fits)["recorded"]

    content = application(world, "H9")
    content["members"][1]["name"] = "名" * (NAME_MAX + 1)
    message = refused_step(world, "Household.Applied", None, content, "members[1].name")
    assert f"at most {NAME_MAX}" in message
    refused_step(world, "Household.RemovedFromRegister", hid,
                 removal(D(2025, 6, 1), reason="理" * (TEXT_MAX + 1)), "reason")
    assert run(world, "Household.RemovedFromRegister", hid,
               removal(D(2025, 6, 1), reason="理" * TEXT_MAX))["recorded"]
    rich = application(world, "H8", income_fen=10**16)
    refused_step(world, "Household.Applied", None, rich, "income_per_capita_fen")


def test_administrative_and_case_texts_are_bounded_too(world: World) -> None:
    app = world.app
    with pytest.raises(InvalidInput) as bad:
        app.create_region("5" * (REGION_CODE_MAX + 1), "某村", "village", TOWNSHIP)
    assert bad.value.field == "code"
    with pytest.raises(InvalidInput) as bad:
        app.create_region("522625100009", "村" * (NAME_MAX + 1), "village", TOWNSHIP)
    assert bad.value.field == "name"
    with pytest.raises(InvalidInput) as bad:
        app.establish_unit("U" * (CODE_MAX + 1), "村委会", "village_committee", VILLAGE)
    assert bad.value.field == "code"
    with pytest.raises(InvalidInput) as bad:
        open_case(world, title="题" * (TEXT_MAX + 1))
    assert bad.value.field == "title"
    with pytest.raises(InvalidInput) as bad:
        open_case(world, evidence=[{"kind": "household", "ref": "x" * 301, "note": ""}])
    assert bad.value.field == "evidence[0].ref"


# over HTTP ------------------------------------------------------------------------------
def test_http_refusals_name_the_field_unknown_fields_included(api: Any, world: World) -> None:
    hid = a_registered_household(world, "H1")
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    officer = api.as_("fund_officer", COUNTY)
    command = sign(world, "FundAccount.Disbursed", account,
                   household_payment(hid, 1_000, document_no="x" * 101))
    refused(officer.post("/commands", json=command), 422, "InvalidInput", "document_no")
    command = sign(world, "FundAccount.Disbursed", account,
                   household_payment(hid, 1_000, day=D(9999, 12, 31)))
    body = refused(officer.post("/commands", json=command), 422, "InvalidInput",
                   "effective_date")
    assert "2013-01-01" in body["detail"]

    good = sign(world, "FundAccount.Disbursed", account, household_payment(hid, 1_000))
    refused(officer.post("/commands", json={**good, "memo": "extra"}), 422, "InvalidInput",
            "memo")
    with_extra_signature_field = {**good, "signatures": [
        {**good["signatures"][0], "comment": "x"}, *good["signatures"][1:]]}
    refused(officer.post("/commands", json=with_extra_signature_field), 422, "InvalidInput",
            "signatures[0].comment")
    before = world.app.recorder.max_notification_id()
    twenty_mb = sign(world, "FundAccount.Disbursed", account,
                     household_payment(hid, 1_000, document_no="x" * (20 * 1024 * 1024)))
    refused(officer.post("/commands", json=twenty_mb), 413, "PayloadTooLarge", "body")
    assert world.app.recorder.max_notification_id() == before
    assert officer.post("/commands", json=good).status_code == 201
