"""Fund accounts (扶贫资金): receive, allocate one level down (下达), disburse (拨付/到户),
recover (追回) and reverse (冲正), in integer fen, each signed by preparer, reviewer and
approver of the account's own level.  No account goes negative; a refused movement
writes nothing; a retried movement is recorded once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from eventsourcing.persistence import IntegrityError, RecordConflictError

from domain.errors import (
    AlreadyReversed,
    ForbiddenPurpose,
    HouseholdNotRegistered,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    SignerNotAuthorised,
)
from domain.fund_account import FundAccount
from domain.household import Household
from domain.money import PURPOSES
from factories import (
    CITY,
    COUNTY,
    EXITED_ON,
    FUNDED_ON,
    PROVINCE,
    REGISTERED_ON,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_household_through,
    a_registered_household,
    a_removed_household,
    allocation,
    an_approved_project,
    an_exited_household,
    event_names,
    household_payment,
    last_event,
    official,
    payment,
    receipt,
    recovery,
    reversal,
    run,
    sign,
)

D = dt.date
FORBIDDEN = sorted(code for code, p in PURPOSES.items() if p.negative_list_item)


def notifications(app) -> int:
    return app.recorder.max_notification_id() or 0


def account_state(app, account_id) -> tuple[int, int, int]:
    a = app.load(FundAccount, account_id)
    return a.balance, a.received, a.paid_out


# receiving ---------------------------------------------------------------------------
def test_received_money_enters_the_account_with_its_document_and_signatures(world):
    account = world.account(PROVINCE)
    content = receipt(5_000_000)

    run(world, "FundAccount.Received", account, content)

    received = last_event(world.app, account)
    assert type(received).__qualname__ == "FundAccount.Received"
    assert (received.movement_id, received.amount_fen, received.effective_date,
            received.purpose, received.document_no) == (
        content["movement_id"], 5_000_000, FUNDED_ON, "special_fund", "财农〔2025〕1号")
    assert [(s["role"], s["position"]) for s in received.signatures] == [
        ("preparer", "province_finance_officer"), ("reviewer", "province_poverty_office_director"),
        ("approver", "province_finance_director")]
    assert account_state(world.app, account) == (5_000_000, 5_000_000, 0)


@pytest.mark.parametrize("amount", [100.0, 1.5, "100", 0, -500, True, None],
                         ids=["float", "fraction", "string", "zero", "negative", "bool", "null"])
def test_amount_must_be_a_positive_integer_number_of_fen(world, amount):
    account = world.account(PROVINCE)
    command = sign(world, "FundAccount.Received", account, receipt(100))
    command["content"]["amount_fen"] = amount  # what a careless client might send

    with pytest.raises(InvalidInput) as refused:
        world.app.execute(command)
    assert refused.value.field == "amount_fen"
    assert event_names(world.app, account) == ["FundAccount.Opened"]


def test_money_event_needs_its_document_number(world):
    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Received", world.account(PROVINCE), receipt(100, document_no=""))
    assert refused.value.field == "document_no"


def test_movement_id_must_be_a_uuid(world):
    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Received", world.account(PROVINCE),
            receipt(100, movement_id="payment-1"))
    assert refused.value.field == "movement_id"


def test_accounts_are_kept_from_township_level_up(app, world):
    with pytest.raises(InvalidInput) as refused:
        app.open_account(VILLAGE, "central")
    assert refused.value.field == "region_code"


# allocating down -------------------------------------------------------------------------
def test_allocation_moves_money_one_level_down_in_one_transaction(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)
    city = world.account(CITY)
    content = allocation(city, 2_000_000)
    before = notifications(world.app)

    run(world, "FundAccount.Allocated", province, content)

    allocated, arrived = last_event(world.app, province), last_event(world.app, city)
    assert type(allocated).__qualname__ == "FundAccount.Allocated"
    assert (allocated.to_account_id, allocated.amount_fen) == (str(city), 2_000_000)
    assert type(arrived).__qualname__ == "FundAccount.AllocationReceived"
    assert (arrived.movement_id, arrived.from_account_id, arrived.amount_fen) == (
        content["movement_id"], str(province), 2_000_000)
    assert notifications(world.app) == before + 2
    assert account_state(world.app, province) == (3_000_000, 5_000_000, 0)
    assert account_state(world.app, city) == (2_000_000, 0, 0)


@pytest.mark.parametrize("target", [COUNTY, PROVINCE], ids=["skipping_a_level", "upwards"])
def test_allocation_only_goes_one_level_down(world, target):
    source = a_funded_account(world, CITY if target == PROVINCE else PROVINCE, 5_000_000)

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Allocated", source, allocation(world.account(target), 1_000))
    assert refused.value.field == "to_account_id"
    assert world.balance(source) == 5_000_000


def test_allocation_keeps_its_fund_source(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)
    city_provincial_funds = world.app.open_account(CITY, "provincial")

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Allocated", province, allocation(city_provincial_funds, 1_000))
    assert refused.value.field == "to_account_id"


def test_allocation_to_an_unknown_account_is_refused(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)

    with pytest.raises(NotFound) as refused:
        run(world, "FundAccount.Allocated", province, allocation(uuid.uuid4(), 1_000))
    assert refused.value.field == "content.to_account_id"


def test_allocation_beyond_the_balance_is_refused_and_nothing_is_written(world):
    province = a_funded_account(world, PROVINCE, 1_000)
    before = notifications(world.app)

    with pytest.raises(InsufficientFunds) as refused:
        run(world, "FundAccount.Allocated", province, allocation(world.account(CITY), 1_001))

    assert refused.value.field == "amount_fen"
    assert refused.value.details["balance_fen"] == 1_000
    assert notifications(world.app) == before
    assert world.balance(province) == 1_000 and world.balance(world.account(CITY)) == 0


# paying households -------------------------------------------------------------------------
def test_payment_to_a_registered_household(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    content = household_payment(hid, 150_000)

    run(world, "FundAccount.Disbursed", account, content)

    paid = last_event(world.app, account)
    assert type(paid).__qualname__ == "FundAccount.Disbursed"
    assert (paid.payee_kind, paid.payee_id, paid.amount_fen, paid.purpose, paid.project_id) == (
        "household", str(hid), 150_000, "hh_industry", None)
    assert account_state(world.app, account) == (850_000, 1_000_000, 150_000)


def test_payment_beyond_the_balance_is_refused_and_nothing_is_written(world):
    account = a_funded_account(world, amount_fen=100_000)
    hid = a_registered_household(world)
    before = notifications(world.app)

    with pytest.raises(InsufficientFunds) as refused:
        run(world, "FundAccount.Disbursed", account, household_payment(hid, 100_001))

    assert refused.value.field == "amount_fen"
    assert notifications(world.app) == before
    assert account_state(world.app, account) == (100_000, 100_000, 0)


def test_payment_to_a_household_never_registered_is_refused(world):
    account = a_funded_account(world)
    hid = a_household_through(world, 5)  # second notice, not yet approved by the county

    with pytest.raises(HouseholdNotRegistered) as refused:
        run(world, "FundAccount.Disbursed", account, household_payment(hid, 100))
    assert refused.value.field == "payee_id"


def test_payment_to_an_unknown_household_is_refused(world):
    account = a_funded_account(world)

    with pytest.raises(NotFound) as refused:
        run(world, "FundAccount.Disbursed", account, household_payment(uuid.uuid4(), 100))
    assert refused.value.field == "content.payee_id"


def test_payment_dated_before_the_registration_date_is_refused(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)

    with pytest.raises(HouseholdNotRegistered) as refused:
        run(world, "FundAccount.Disbursed", account,
            household_payment(hid, 100, day=REGISTERED_ON - dt.timedelta(days=1)))
    assert refused.value.field == "payee_id"

    run(world, "FundAccount.Disbursed", account, household_payment(hid, 100, day=REGISTERED_ON))


def test_payment_to_a_household_removed_at_the_business_date_is_refused(world):
    account = a_funded_account(world)
    hid = a_removed_household(world, removed_on=D(2025, 6, 1))

    with pytest.raises(HouseholdNotRegistered) as refused:
        run(world, "FundAccount.Disbursed", account, household_payment(hid, 100, day=D(2025, 6, 1)))
    assert refused.value.field == "payee_id"

    run(world, "FundAccount.Disbursed", account, household_payment(hid, 100, day=D(2025, 5, 31)))
    assert last_event(world.app, account).effective_date == D(2025, 5, 31)


@pytest.mark.parametrize("purpose", ["hh_education", "hh_medical"])
def test_exited_household_keeps_aid_that_continues_after_exit(world, purpose):
    account = a_funded_account(world)
    hid = an_exited_household(world)

    run(world, "FundAccount.Disbursed", account,
        household_payment(hid, 50_000, day=EXITED_ON, purpose=purpose))

    assert last_event(world.app, account).purpose == purpose


@pytest.mark.parametrize("purpose", ["hh_industry", "hh_housing"])
def test_exited_household_no_longer_receives_aid_that_ends_with_exit(world, purpose):
    account = a_funded_account(world)
    hid = an_exited_household(world)

    with pytest.raises(HouseholdNotRegistered) as refused:
        run(world, "FundAccount.Disbursed", account,
            household_payment(hid, 50_000, day=EXITED_ON, purpose=purpose))
    assert refused.value.field == "payee_id"

    run(world, "FundAccount.Disbursed", account,
        household_payment(hid, 50_000, day=EXITED_ON - dt.timedelta(days=1), purpose=purpose))


@pytest.mark.parametrize("purpose", FORBIDDEN)
def test_purpose_on_the_negative_list_is_refused_at_the_door(world, purpose):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    before = notifications(world.app)

    with pytest.raises(ForbiddenPurpose) as refused:
        run(world, "FundAccount.Disbursed", account, household_payment(hid, 100, purpose=purpose))

    assert refused.value.field == "purpose"
    assert refused.value.details["purpose"] == purpose
    assert notifications(world.app) == before


def test_forbidden_purpose_is_refused_on_receipt_too(world):
    with pytest.raises(ForbiddenPurpose):
        run(world, "FundAccount.Received", world.account(PROVINCE),
            receipt(100, purpose="office_buildings"))


def test_unknown_purpose_is_refused(world):
    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Received", world.account(PROVINCE), receipt(100, purpose="misc"))
    assert refused.value.field == "purpose"


def test_household_purpose_is_not_paid_to_a_project(world):
    account = a_funded_account(world)
    project = an_approved_project(world)
    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Disbursed", account,
            payment("project", project, 100, day=D(2025, 3, 1), purpose="hh_industry"))
    assert refused.value.field == "purpose"


# idempotency ---------------------------------------------------------------------------------
def test_retried_movement_is_recorded_once(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    command = sign(world, "FundAccount.Disbursed", account, household_payment(hid, 20_000))

    assert world.app.execute(command)["recorded"] is True
    assert world.app.execute(command)["recorded"] is False

    assert event_names(world.app, account).count("FundAccount.Disbursed") == 1
    assert world.balance(account) == 980_000


def test_retried_allocation_is_recorded_once_on_both_accounts(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)
    content = allocation(world.account(CITY), 1_000_000)

    run(world, "FundAccount.Allocated", province, content)
    assert run(world, "FundAccount.Allocated", province, content)["recorded"] is False

    assert world.balance(province) == 4_000_000
    assert world.balance(world.account(CITY)) == 1_000_000


def test_same_movement_id_with_different_content_is_an_idempotency_conflict(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    first = household_payment(hid, 20_000)
    run(world, "FundAccount.Disbursed", account, first)

    with pytest.raises(IdempotencyConflict) as refused:
        run(world, "FundAccount.Disbursed", account, {**first, "amount_fen": 20_001})
    assert refused.value.field == "movement_id"
    assert world.balance(account) == 980_000


def test_movement_id_of_another_kind_of_movement_is_an_idempotency_conflict(world):
    account = a_funded_account(world)
    received = last_event(world.app, account)
    hid = a_registered_household(world)

    with pytest.raises(IdempotencyConflict):
        run(world, "FundAccount.Disbursed", account,
            household_payment(hid, 100, movement_id=received.movement_id))


# recovering -------------------------------------------------------------------------------
def test_recovery_brings_part_of_a_payment_back_and_references_it(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)

    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 50_000))

    recovered = last_event(world.app, account)
    assert type(recovered).__qualname__ == "FundAccount.Recovered"
    assert (recovered.of_movement_id, recovered.amount_fen, recovered.purpose) == (
        pay["movement_id"], 50_000, "hh_industry")
    assert recovered.reason == "清退户不应享受产业补助"
    assert account_state(world.app, account) == (900_000, 1_000_000, 100_000)


def test_recovery_cannot_exceed_what_is_still_out(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)
    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 100_000))

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 50_001))
    assert refused.value.field == "amount_fen"


def test_recovery_applies_to_payments_only(world):
    account = a_funded_account(world)
    received = last_event(world.app, account)

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Recovered", account,
            recovery(received.movement_id, 100, purpose="special_fund"))
    assert refused.value.field == "of_movement_id"


def test_recovery_books_back_to_the_payments_own_purpose(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Recovered", account,
            recovery(pay["movement_id"], 100, purpose="hh_education"))
    assert refused.value.field == "purpose"


def test_recovery_of_an_unknown_movement_is_refused(world):
    account = a_funded_account(world)

    with pytest.raises(NotFound) as refused:
        run(world, "FundAccount.Recovered", account, recovery(str(uuid.uuid4()), 100))
    assert refused.value.field == "of_movement_id"


# reversing ------------------------------------------------------------------------------
def test_reversal_references_the_original_and_undoes_it(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)
    content = reversal(pay["movement_id"], 150_000, purpose="hh_industry")

    run(world, "FundAccount.Reversed", account, content)

    reversed_ = last_event(world.app, account)
    assert type(reversed_).__qualname__ == "FundAccount.Reversed"
    assert (reversed_.movement_id, reversed_.of_movement_id, reversed_.amount_fen) == (
        content["movement_id"], pay["movement_id"], 150_000)
    assert event_names(world.app, account)[-2:] == ["FundAccount.Disbursed", "FundAccount.Reversed"]
    assert account_state(world.app, account) == (1_000_000, 1_000_000, 0)


def test_second_reversal_of_a_movement_is_refused(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)
    run(world, "FundAccount.Reversed", account, reversal(pay["movement_id"], 150_000,
                                                         purpose="hh_industry"))

    with pytest.raises(AlreadyReversed) as refused:
        run(world, "FundAccount.Reversed", account, reversal(pay["movement_id"], 150_000,
                                                             purpose="hh_industry"))
    assert refused.value.field == "of_movement_id"
    assert world.balance(account) == 1_000_000


def test_reversal_undoes_exactly_what_is_left_of_the_movement(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)
    pay = household_payment(hid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)
    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 50_000))

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Reversed", account,
            reversal(pay["movement_id"], 150_000, purpose="hh_industry", day=D(2025, 7, 2)))
    assert refused.value.field == "amount_fen"

    run(world, "FundAccount.Reversed", account,
        reversal(pay["movement_id"], 100_000, purpose="hh_industry", day=D(2025, 7, 2)))
    assert account_state(world.app, account) == (1_000_000, 1_000_000, 0)


def test_reversing_a_receipt_takes_the_money_out_again(world):
    account = a_funded_account(world, PROVINCE, 300_000)
    received = last_event(world.app, account)

    run(world, "FundAccount.Reversed", account,
        reversal(received.movement_id, 300_000, purpose="special_fund"))

    assert account_state(world.app, account) == (0, 0, 0)


def test_reversing_a_receipt_already_spent_is_refused(world):
    account = a_funded_account(world, PROVINCE, 300_000)
    received = last_event(world.app, account)
    run(world, "FundAccount.Allocated", account, allocation(world.account(CITY), 1))

    with pytest.raises(InsufficientFunds) as refused:
        run(world, "FundAccount.Reversed", account,
            reversal(received.movement_id, 300_000, purpose="special_fund"))
    assert refused.value.field == "of_movement_id"


def test_reversing_an_allocation_takes_the_money_back_from_the_child(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)
    city = world.account(CITY)
    give = allocation(city, 2_000_000)
    run(world, "FundAccount.Allocated", province, give)
    before = notifications(world.app)

    run(world, "FundAccount.Reversed", province,
        reversal(give["movement_id"], 2_000_000, purpose="special_fund"))

    back = last_event(world.app, city)
    assert type(back).__qualname__ == "FundAccount.AllocationReversed"
    assert (back.of_movement_id, back.amount_fen) == (give["movement_id"], 2_000_000)
    assert notifications(world.app) == before + 2
    assert world.balance(province) == 5_000_000 and world.balance(city) == 0


def test_reversing_an_allocation_the_child_has_spent_is_refused_and_nothing_is_written(world):
    province = a_funded_account(world, PROVINCE, 5_000_000)
    city, county = world.account(CITY), world.account(COUNTY)
    give = allocation(city, 2_000_000)
    run(world, "FundAccount.Allocated", province, give)
    run(world, "FundAccount.Allocated", city, allocation(county, 1_500_000))
    before = notifications(world.app)

    with pytest.raises(InsufficientFunds) as refused:
        run(world, "FundAccount.Reversed", province,
            reversal(give["movement_id"], 2_000_000, purpose="special_fund"))

    assert refused.value.field == "of_movement_id"
    assert notifications(world.app) == before
    assert (world.balance(province), world.balance(city)) == (3_000_000, 500_000)


def test_money_is_signed_at_the_accounts_own_level(world):
    township = a_funded_account(world, TOWNSHIP)

    with pytest.raises(SignerNotAuthorised) as refused:
        run(world, "FundAccount.Received", township, receipt(100),
            by={"approver": official("finance_director", COUNTY)})
    assert refused.value.field == "signatures[2].official_id"


# snapshots ------------------------------------------------------------------------------------
def test_account_restored_from_a_snapshot_equals_the_account_replayed_from_its_events(store, world):
    account = a_funded_account(world, COUNTY, 1_000_000)
    hid = a_registered_household(world)
    pay = household_payment(hid, 300_000)
    paying = sign(world, "FundAccount.Disbursed", account, pay)
    world.app.execute(paying)
    run(world, "FundAccount.Allocated", account, allocation(world.account(TOWNSHIP), 200_000))
    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 100_000))
    replayed = vars(world.app.load(FundAccount, account))

    world.app.take_snapshot(account)
    restored_app = store.app_on(world.app.database_url)
    restored = restored_app.load(FundAccount, account)

    assert len(list(world.app.snapshots.get(account))) == 1  # restored from it
    assert vars(restored) == replayed
    assert restored_app.execute(paying)["recorded"] is False  # retries still recognised
    run(world, "FundAccount.Disbursed", account, household_payment(hid, 1))
    assert restored_app.load(FundAccount, account).balance == 599_999


# concurrency -------------------------------------------------------------------------------
def test_two_instances_disbursing_from_one_account_cannot_lose_an_update(store, world):
    """Each instance loads the account before either saves; the second save conflicts."""
    account = a_funded_account(world, amount_fen=100_000)
    hid = a_registered_household(world)
    first_app = store.app_on(world.app.database_url)
    second_app = store.app_on(world.app.database_url)
    first = sign(world, "FundAccount.Disbursed", account, household_payment(hid, 60_000))
    second = sign(world, "FundAccount.Disbursed", account, household_payment(hid, 70_000))
    in_first, in_second = (a.load(FundAccount, account) for a in (first_app, second_app))

    def disburse(app, acc, command):
        """What ``execute`` does between its load and its save."""
        content = {**command["content"], "effective_date": D.fromisoformat(
            command["content"]["effective_date"])}
        acc.disburse(**content, household=app.load(Household, hid),
                     authorise=app.authoriser(command["signatures"]))
        app.save(acc)

    disburse(first_app, in_first, first)
    with pytest.raises(RecordConflictError) as conflict:
        disburse(second_app, in_second, second)

    assert isinstance(conflict.value, IntegrityError)
    assert account_state(store.app_on(world.app.database_url), account) == (40_000, 100_000, 60_000)


def test_a_batch_stores_its_events_in_the_order_the_commands_ran(world) -> None:
    app = world.app
    hid = a_registered_household(world, "H1")
    t, c = world.account(TOWNSHIP), world.account(COUNTY)
    before = app.recorder.max_notification_id()
    with app.batch():
        run(world, "FundAccount.Received", t, receipt(300_000))
        run(world, "Household.AnnualReviewRecorded", hid, {
            "year": 2025, "effective_date": "2025-03-01", "income_per_capita_fen": 350_000,
            "members_count": 3, "notes": ""})
        run(world, "FundAccount.Received", c, receipt(100_000))
        run(world, "FundAccount.Disbursed", t, household_payment(hid, 50_000))

    stored = app.recorder.select_notifications(start=before + 1, limit=10)
    assert [(n.topic.rpartition(":")[2], str(n.originator_id)) for n in stored] == [
        ("FundAccount.Received", str(t)), ("Household.AnnualReviewRecorded", str(hid)),
        ("FundAccount.Received", str(c)), ("FundAccount.Disbursed", str(t))]
    assert world.balance(t) == 250_000 and world.balance(c) == 100_000
