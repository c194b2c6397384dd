"""Red flags (问题线索): each rule of docs/INSPECTION.md raised by its scenario, and its near miss.

Every scenario goes through the public command path (signed commands, declared relatives,
cases) on both stores; the flags are read back with ``projections.flags.list_flags`` after
catching up in small batches, and each scenario ends by rebuilding the flags from zero,
which must give the same tables.  Payments are the township's: prepared by its finance
accountant, reviewed by its head, approved by its party secretary.

Two rules cannot be reached through the domain and are tested on synthetic events fed to
the projection on a scratch database: ``PAY_UNREGISTERED`` (a payment to a household not
on the register is refused at the door — it is reached, and then withdrawn, only when two
transactions race and the payment is stored before the payee's registration) and ``SIGNERS_RELATED``
with preparer = approver (refused as ``SeparationOfDuties``; related signers are planted
by declared relatives).  ``BACKDATED`` compares the business date with the event's record
time, which the application stamps with its clock: the tests set it (``record_time``).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from factories import (
    CITY,
    COUNTY,
    OTHER_VILLAGE,
    PROVINCE,
    START,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_household_applied,
    a_registered_household,
    allocation,
    an_exited_household,
    application,
    exit_steps,
    household_payment,
    id_number,
    key_for,
    official,
    official_id,
    person_number,
    receipt,
    removal,
    reversal,
    run,
)

from inspection.rules import RULE_IDS, RuleSettings, backdated_by, completed_split, payment_rule, period_key, status_on
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.signing import b64
from projections import runner
from projections.events import Event
from projections.flags import Flags, flag_counts, get_flag, list_flags
from projections.projection import Rows
from store.engines import dispose, engine_for, writer
from projections.tracking import dump, ensure_schema

D = dt.date
T = str(FundAccount.create_id(TOWNSHIP, "central"))
C = str(FundAccount.create_id(COUNTY, "central"))
PAYERS = [official_id(official(who, TOWNSHIP))
          for who in ("finance_accountant", "head", "party_secretary")]
COUNTY_APPROVERS = [official_id(official(who, COUNTY))
                    for who in ("poverty_staff", "poverty_director", "deputy_magistrate")]
INSPECTOR = "inspector:纪委 王"
TABLES = Flags.tables


pytestmark = pytest.mark.usefixtures("close_read_models")


def flags(app, rule, **kw):
    """The standing flags of ``rule``, after catching up in small batches."""
    runner.catch_up(app, names=["flags"], batch=20)
    return list_flags(engine_for(app.database_url), rule_id=rule, limit=1000, **kw)


def by_subject(app, rule):
    return {f["subject_id"]: f for f in flags(app, rule)}


def assert_rebuild_gives_the_same_flags(app):
    runner.catch_up(app, names=["flags"], batch=20)
    engine = engine_for(app.database_url)
    with engine.connect() as conn:
        incremental = dump(conn, TABLES)
    runner.rebuild(app, names=["flags"])
    with engine.connect() as conn:
        assert dump(conn, TABLES) == incremental


MARCH_1 = D(2025, 3, 1)


def pay(world, household, amount=10_000, day=MARCH_1, purpose="hh_industry", **kw):
    content = household_payment(household, amount, day=day, purpose=purpose)
    run(world, "FundAccount.Disbursed", T, content, **kw)
    return content["movement_id"]


def last_position(app):
    return app.recorder.max_notification_id()


def positions(app, step, subject):
    return [n.id for n in app.recorder.select_notifications(1, 10**6)
            if n.topic.endswith(f":{step}") and str(n.originator_id) == str(subject)]


def person(code, who="head"):
    return id_number(person_number(f"{code}/{who}"))


def payment_evidence(movement_id, account=T):
    return {"kind": "payment", "ref": movement_id, "account_id": account}


def event(position):
    return {"kind": "event", "ref": position}


# the settings and the pure rules ------------------------------------------------------
def test_settings_default_as_documented_and_read_from_the_environment():
    assert RuleSettings.from_env({}) == RuleSettings(
        idle_days=180, backdate_days=30, split_window_days=30,
        approval_threshold_fen=3_000_000, relapse_window_days=365, duplicate_period="month")
    s = RuleSettings.from_env({"ZHUISU_FLAG_IDLE_DAYS": "90", "ZHUISU_FLAG_BACKDATE_DAYS": "7",
                               "ZHUISU_FLAG_SPLIT_WINDOW_DAYS": "10",
                               "ZHUISU_FLAG_APPROVAL_THRESHOLD_FEN": "1_000_000",
                               "ZHUISU_FLAG_RELAPSE_WINDOW_DAYS": "730",
                               "ZHUISU_FLAG_DUPLICATE_PERIOD": "quarter"})
    assert (s.idle_days, s.backdate_days, s.split_window_days, s.approval_threshold_fen,
            s.relapse_window_days, s.duplicate_period) == (90, 7, 10, 1_000_000, 730, "quarter")
    assert s.digest() != RuleSettings().digest()
    assert Flags(s).version != Flags(RuleSettings()).version


@pytest.mark.parametrize(("var", "value"), [
    ("ZHUISU_FLAG_IDLE_DAYS", "half a year"), ("ZHUISU_FLAG_BACKDATE_DAYS", "-1"),
    ("ZHUISU_FLAG_APPROVAL_THRESHOLD_FEN", "0"), ("ZHUISU_FLAG_DUPLICATE_PERIOD", "week"),
    ("ZHUISU_FLAG_RELAPSE_WINDOW_DAYS", "1.5")])
def test_a_bad_setting_is_refused_naming_its_variable(var, value):
    with pytest.raises(InvalidInput) as refused:
        RuleSettings.from_env({var: value})
    assert refused.value.field == var
    assert var in refused.value.message


def test_pure_rules():
    assert [period_key(D(2025, 5, 3), p) for p in ("month", "quarter", "year")] == [
        "2025-05", "2025-Q2", "2025"]
    transitions = [["2025-11-12", "exited", 20], ["2025-01-23", "registered", 10]]
    assert status_on(transitions, D(2025, 1, 22)) is None
    assert status_on(transitions, D(2025, 11, 11)) == "registered"
    assert status_on(transitions, D(2025, 11, 12)) == "exited"
    assert payment_rule(None, "hh_industry") == "PAY_UNREGISTERED"
    assert payment_rule("removed", "hh_education") == "PAY_REMOVED"
    assert payment_rule("exited", "hh_industry") == "PAY_AFTER_EXIT"
    assert payment_rule("exited", "hh_education") is None  # 脱贫不脱政策
    assert payment_rule("registered", "hh_industry") is None
    # two below the threshold that reach it within the window; not when one is already a split
    assert completed_split([("2025-03-01", 1, 1_600_000)], ("2025-03-31", 2, 1_400_000),
                           30, 3_000_000) == [1, 2]
    assert completed_split([("2025-03-01", 1, 1_600_000)], ("2025-04-01", 2, 1_400_000),
                           30, 3_000_000) is None
    assert completed_split([("2025-03-01", 1, 1_600_000)], ("2025-03-02", 2, 1_399_999),
                           30, 3_000_000) is None
    assert completed_split([("2025-03-01", 1, 3_100_000)], ("2025-03-02", 2, 100),
                           30, 3_000_000) is None
    utc = dt.UTC
    assert backdated_by(dt.datetime(2025, 3, 31, 16, 0, tzinfo=utc), D(2025, 3, 1)) == 31
    assert backdated_by(dt.datetime(2025, 3, 31, 15, 59, tzinfo=utc), D(2025, 3, 1)) == 30


# payments and the payee's register status --------------------------------------------------
def test_payment_on_or_after_a_removal_recorded_later_is_flagged_not_the_day_before(app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    before = pay(world, hid, day=D(2025, 5, 31))
    on = pay(world, hid, day=D(2025, 6, 1))
    after = pay(world, hid, day=D(2025, 6, 20), purpose="hh_housing")
    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 6, 1)))
    removed_at = last_position(app)

    found = by_subject(app, "PAY_REMOVED")
    assert set(found) == {on, after}
    assert before not in found
    flag = found[on]
    assert flag["flag_id"] == f"PAY_REMOVED:{on}"
    assert (flag["severity"], flag["subject_kind"], flag["region_code"]) == (
        "high", "payment", VILLAGE)
    assert flag["signers"] == PAYERS
    assert flag["evidence"] == [payment_evidence(on), {"kind": "household", "ref": hid},
                                event(positions(app, "FundAccount.Disbursed", T)[1]),
                                event(removed_at)]
    assert (flag["log_position"], flag["effective_date"]) == (removed_at, "2025-06-01")
    assert flag["detail"]["status_since"] == "2025-06-01"
    assert "2025-06-01" in flag["explanation_zh"] and "removed" in flag["explanation_en"]
    assert_rebuild_gives_the_same_flags(app)


def test_payment_dated_after_an_exit_approved_later_is_flagged_unless_aid_continues(app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    steps = exit_steps("H1")
    for step, content in steps[:-1]:  # verified by the township on 2025-11-11
        run(world, step, hid, content)
    late = pay(world, hid, day=D(2025, 12, 1))  # business date ahead: the household is on
    continues = pay(world, hid, day=D(2025, 12, 1), purpose="hh_education")  # 脱贫不脱政策
    before = pay(world, hid, day=D(2025, 11, 11), purpose="hh_housing")
    step, content = steps[-1]
    run(world, step, hid, content)  # approved on 2025-11-12
    approved_at = last_position(app)

    found = by_subject(app, "PAY_AFTER_EXIT")
    assert set(found) == {late}
    assert continues not in found and before not in found
    flag = found[late]
    assert flag["signers"] == PAYERS
    assert event(approved_at) in flag["evidence"]
    assert payment_evidence(late) in flag["evidence"]
    assert flag["detail"]["status"] == "exited" and flag["detail"]["purpose"] == "hh_industry"
    assert flags(app, "PAY_REMOVED") == [] and flags(app, "PAY_UNREGISTERED") == []
    assert_rebuild_gives_the_same_flags(app)


def test_duplicate_payment_in_the_same_month_is_flagged_unless_reversed(app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    first = pay(world, hid, 10_000, D(2025, 3, 1))
    twice = pay(world, hid, 20_000, D(2025, 3, 20))
    pay(world, hid, 10_000, D(2025, 4, 1))  # another month
    pay(world, hid, 10_000, D(2025, 3, 5), purpose="hh_education")  # another purpose
    corrected = pay(world, hid, 10_000, D(2025, 5, 2))
    again = pay(world, hid, 10_000, D(2025, 5, 3))
    run(world, "FundAccount.Reversed", T, reversal(corrected, 10_000, purpose="hh_industry",
                                                   day=D(2025, 5, 4)))
    reversed_at = last_position(app)

    found = by_subject(app, "PAY_DUPLICATE")
    assert set(found) == {twice}
    flag = found[twice]
    assert flag["evidence"][:3] == [payment_evidence(twice), payment_evidence(first),
                                    {"kind": "household", "ref": hid}]
    assert flag["signers"] == PAYERS and flag["detail"]["period"] == "2025-03"
    withdrawn = get_flag(engine_for(app.database_url), f"PAY_DUPLICATE:{again}")
    assert withdrawn["withdrawn_position"] == reversed_at
    assert_rebuild_gives_the_same_flags(app)


def test_split_payments_reaching_the_threshold_within_the_window_are_flagged(app, world):
    a_funded_account(world, TOWNSHIP, 30_000_000)
    h = {code: str(a_registered_household(world, code)) for code in ("H1", "H2", "H3", "H4")}
    first = pay(world, h["H1"], 1_600_000, D(2025, 3, 20))
    completes = pay(world, h["H1"], 1_500_000, D(2025, 4, 19))  # 30 days later: 31,000 yuan
    pay(world, h["H1"], 100_000, D(2025, 4, 20))  # the split is already flagged
    pay(world, h["H2"], 1_400_000, D(2025, 3, 20))
    pay(world, h["H2"], 1_500_000, D(2025, 4, 10))  # 29,000 yuan: below the threshold
    pay(world, h["H3"], 1_600_000, D(2025, 3, 20))
    pay(world, h["H3"], 1_500_000, D(2025, 4, 20))  # 31 days apart
    pay(world, h["H4"], 3_000_000, D(2025, 3, 20))  # at the threshold: approved as such
    pay(world, h["H4"], 100_000, D(2025, 4, 10))

    found = by_subject(app, "SPLIT_PAYMENT")
    assert set(found) == {completes}
    flag = found[completes]
    assert flag["evidence"][:2] == [payment_evidence(first), payment_evidence(completes)]
    assert flag["detail"]["total_fen"] == 3_100_000
    assert flag["signers"] == PAYERS and flag["region_code"] == VILLAGE
    assert_rebuild_gives_the_same_flags(app)


# households ---------------------------------------------------------------------------
def test_households_applying_with_one_bank_account_are_flagged_from_the_second(app, world):
    shared = hashlib.sha256(b"bank/shared").hexdigest()
    first = str(a_household_applied(world, "H1"))
    h = {}
    for code, bank in (("H2", shared), ("H3", None), ("H4", shared)):
        content = application(world, code)
        if bank:
            content["bank_account_hash"] = bank
        h[code] = str(Household.create_id(code))
        run(world, "Household.Applied", h[code], content)
    run(world, "Household.Applied", str(Household.create_id("H5")),
        {**application(world, "H5"), "bank_account_hash": application(world, "H1")[
            "bank_account_hash"]})
    h5 = str(Household.create_id("H5"))

    found = by_subject(app, "BANK_ACCOUNT_SHARED")
    assert set(found) == {h["H4"], h5}  # H2 is the first with the shared account
    flag = found[h5]
    assert flag["evidence"][:2] == [{"kind": "household", "ref": h5},
                                    {"kind": "household", "ref": first}]
    assert flag["signers"] == [official_id(official("accountant", VILLAGE))]
    assert flag["detail"]["other_code"] == "H1"
    assert found[h["H4"]]["detail"]["other_code"] == "H2"
    assert_rebuild_gives_the_same_flags(app)


def test_exit_approved_although_the_latest_review_is_at_or_below_the_line(app, world):
    def with_review(code, year, income, day="2025-10-01"):
        hid = a_registered_household(world, code)
        run(world, "Household.AnnualReviewRecorded", hid,
            {"year": year, "effective_date": day, "income_per_capita_fen": income,
             "members_count": 2, "notes": ""})
        for step, content in exit_steps(code):
            run(world, step, hid, content)
        return str(hid)

    failing = with_review("H1", 2025, 730_000)  # the 2025 line: 730,000 fen
    with_review("H2", 2025, 730_001)
    with_review("H3", 2024, 100_000)  # a review of the year before the exit
    passed = str(an_exited_household(world, "H4"))
    run(world, "Household.AnnualReviewRecorded", passed,
        {"year": 2025, "effective_date": "2025-12-01", "income_per_capita_fen": 100_000,
         "members_count": 2, "notes": ""})  # after the approval

    [flag] = flags(app, "EXIT_CHECKS_FAILED")
    assert flag["subject_id"] == failing and flag["subject_kind"] == "household"
    assert flag["signers"] == COUNTY_APPROVERS
    assert flag["evidence"] == [
        {"kind": "household", "ref": failing},
        event(positions(app, "Household.AnnualReviewRecorded", failing)[0]),
        event(positions(app, "Household.ExitApprovedByCounty", failing)[0])]
    assert (flag["detail"]["income_per_capita_fen"], flag["detail"]["line_fen"]) == (
        730_000, 730_000)
    assert_rebuild_gives_the_same_flags(app)


def test_relapse_within_a_year_of_the_exit_is_flagged(app, world):
    soon, later = str(an_exited_household(world, "H1")), str(an_exited_household(world, "H2"))
    for hid, day in ((soon, "2026-11-12"), (later, "2026-11-13")):  # exited 2025-11-12
        run(world, "Household.Relapsed", hid,
            {"effective_date": day, "cause": "illness", "income_per_capita_fen": 300_000})

    [flag] = flags(app, "RELAPSE_SOON")
    assert flag["subject_id"] == soon and flag["detail"]["days"] == 365
    assert flag["signers"] == COUNTY_APPROVERS
    assert flag["evidence"] == [
        {"kind": "household", "ref": soon},
        event(positions(app, "Household.ExitApprovedByCounty", soon)[0]),
        event(positions(app, "Household.Relapsed", soon)[0])]
    assert_rebuild_gives_the_same_flags(app)


def test_official_who_signed_the_identification_and_declared_a_member_a_relative(app, world):
    secretary = official("party_secretary", VILLAGE)
    app.declare_relative(secretary, person("H1", "spouse"), "sibling")  # before the steps
    h1 = str(a_registered_household(world, "H1"))
    h2 = str(a_registered_household(world, "H2"))
    h3 = str(a_registered_household(world, "H3"))
    app.declare_relative(official("deputy_magistrate", COUNTY), person("H2"), "cousin")  # after
    app.declare_relative(official("finance_accountant", TOWNSHIP), person("H3"), "uncle")

    found = by_subject(app, "APPROVER_RELATED_TO_HOUSEHOLD")
    assert set(found) == {h1, h2}  # the township accountant signed no identification step
    assert h3 not in found
    flag = found[h1]
    assert flag["signers"] == [official_id(secretary)]
    assert flag["detail"]["relation"] == "sibling" and flag["detail"]["member"] == "H1配偶"
    assert event(positions(app, "Household.AppraisedByVillage", h1)[0]) in flag["evidence"]
    assert flag["log_position"] == positions(app, "Household.AppraisedByVillage", h1)[0]
    declared = found[h2]
    assert declared["signers"] == [official_id(official("deputy_magistrate", COUNTY))]
    assert declared["log_position"] == last_position(app) - 1
    assert declared["effective_date"] == "2025-01-23"  # the approval it questions
    assert_rebuild_gives_the_same_flags(app)


# payees and signers related --------------------------------------------------------------
def test_payment_to_a_household_with_a_relative_of_a_signer(app, world):
    a_funded_account(world, TOWNSHIP, 5_000_000)
    h1, h2, h3 = (str(a_registered_household(world, c)) for c in ("H1", "H2", "H3"))
    app.declare_relative(official("party_secretary", TOWNSHIP), person("H1", "spouse"), "sibling")
    to_relative = pay(world, h1)
    pay(world, h2)
    before_declared = pay(world, h3)
    app.declare_relative(official("head", TOWNSHIP), person("H3"), "cousin")

    found = by_subject(app, "PAYEE_RELATIVE_OF_SIGNER")
    assert set(found) == {to_relative, before_declared}
    flag = found[to_relative]
    assert flag["signers"] == PAYERS
    assert flag["evidence"][:3] == [payment_evidence(to_relative), {"kind": "household", "ref": h1},
                                    {"kind": "official",
                                     "ref": official_id(official("party_secretary", TOWNSHIP))}]
    head = official_id(official("head", TOWNSHIP))
    assert found[before_declared]["detail"]["official_id"] == head
    assert found[before_declared]["log_position"] == last_position(app)
    assert_rebuild_gives_the_same_flags(app)


def an_official(app, code, kind, region, n):
    app.register_official(code, code, f"U{region}", id_number(n))
    app.take_position(code, kind, region, START)
    app.register_key(code, b64(key_for(code).public_bytes), START)


def test_preparer_and_approver_related_by_a_declaration(app, world):
    accountant, head = f"accountant2@{TOWNSHIP}", f"head2@{TOWNSHIP}"
    an_official(app, accountant, "township_finance_accountant", TOWNSHIP, 7001)
    an_official(app, head, "township_head", TOWNSHIP, 7002)
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    related = {"preparer": accountant, "approver": head}
    earlier = pay(world, hid, day=D(2025, 3, 1), by=related)
    app.declare_relative(accountant, id_number(7002), "spouse")
    declared_at = last_position(app)
    later = pay(world, hid, day=D(2025, 4, 1), by=related)
    pay(world, hid, day=D(2025, 5, 1), by={"preparer": accountant, "reviewer": head})

    found = by_subject(app, "SIGNERS_RELATED")
    assert set(found) == {earlier, later}
    flag = found[later]
    assert set(flag["signers"]) == {official_id(accountant), official_id(head),
                                    official_id(official("head", TOWNSHIP))}
    assert flag["detail"]["how"] == "related"
    assert flag["detail"]["declared_by"] == official_id(accountant)
    assert flag["evidence"][:3] == [payment_evidence(later),
                                    {"kind": "official", "ref": official_id(accountant)},
                                    {"kind": "official", "ref": official_id(head)}]
    assert (found[earlier]["log_position"], found[earlier]["effective_date"]) == (
        declared_at, "2025-03-01")
    assert_rebuild_gives_the_same_flags(app)


# time: the record clock and the log clock ------------------------------------------------
@pytest.fixture
def record_time(app):
    """Set the record time: the application's clock, which stamps its new events."""
    def at(when: dt.datetime) -> None:
        app.clock = lambda: when
    return at


def test_step_recorded_more_than_backdate_days_after_its_business_date(app, world, record_time):
    record_time(dt.datetime(2025, 3, 31, 17, 0, tzinfo=dt.UTC))  # 2025-04-01 in China
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    old = pay(world, hid, day=D(2025, 3, 1))  # 31 days before
    recent = pay(world, hid, day=D(2025, 3, 2), purpose="hh_housing")  # 30 days before

    found = by_subject(app, "BACKDATED")
    assert old in found and recent not in found
    flag = found[old]
    assert (flag["severity"], flag["subject_kind"]) == ("low", "payment")
    assert flag["detail"]["days"] == 31 and flag["detail"]["recorded_on"] == "2025-04-01"
    assert flag["signers"] == PAYERS
    applied = found[f"{hid}@1"]  # another step: {originator_id}@{version}
    assert applied["subject_kind"] == "step"
    assert applied["signers"] == [official_id(official("accountant", VILLAGE))]
    assert_rebuild_gives_the_same_flags(app)


def test_money_unspent_more_than_idle_days_by_the_log_clock(app, world):
    a_funded_account(world, TOWNSHIP, 1_000_000)  # 2025-01-02
    run(world, "FundAccount.Received", str(FundAccount.create_id(CITY, "central")),
        receipt(500_000, day=D(2025, 1, 3)))
    run(world, "FundAccount.Received", str(FundAccount.create_id(PROVINCE, "central")),
        receipt(500_000, day=D(2025, 1, 4)))
    run(world, "FundAccount.Received", C, receipt(500_000, day=D(2025, 1, 3)))
    run(world, "FundAccount.Allocated", C, allocation(T, 500_000, day=D(2025, 6, 1)))
    hid = str(a_registered_household(world, "H1"))

    pay(world, hid, day=D(2025, 7, 1))  # the township's money of 2025-01-02: 180 days
    assert flags(app, "IDLE_FUNDS") == []
    pay(world, hid, day=D(2025, 7, 2), purpose="hh_housing")
    [flag] = flags(app, "IDLE_FUNDS")
    assert flag["subject_id"] == T and flag["region_code"] == TOWNSHIP
    assert flag["detail"]["idle_since"] == "2025-01-02" and flag["detail"]["days"] == 181
    assert flag["evidence"] == [{"kind": "account", "ref": T},
                                event(positions(app, "FundAccount.Received", T)[0])]
    assert (flag["effective_date"], flag["log_position"]) == ("2025-07-02", last_position(app))
    pay(world, hid, day=D(2025, 7, 3), purpose="hh_education")  # the city's turn; the
    city = str(FundAccount.create_id(CITY, "central"))  # county allocated all it had
    assert {f["subject_id"] for f in flags(app, "IDLE_FUNDS")} == {T, city}
    assert_rebuild_gives_the_same_flags(app)


def test_rectification_item_not_completed_by_its_deadline(app, world):
    case_no = "镇纪〔2025〕9号"
    app.open_case(case_no=case_no, case_type="idle_funds", title="资金滞留",
                  region_code=VILLAGE, effective_date="2025-07-01", recorded_by=INSPECTOR)
    director = official_id(official("director", VILLAGE))

    def step(verb, **kw):
        app.case_step(case_no, verb, recorded_by=INSPECTOR, **kw)

    for item, deadline in (("1", "2025-08-31"), ("2", "2025-09-30"), ("3", "2025-07-15")):
        step("add_rectification_item", item_id=item, problem="资金拨付到位", deadline=deadline,
             unit_code=f"U{VILLAGE}", official_id=director, effective_date="2025-07-01")
    step("complete_rectification_item", item_id="3", evidence="拨付凭证",
         effective_date="2025-07-20")  # five days late
    step("record_finding", finding_id="F1", text="核查", effective_date="2025-08-31")
    assert set(by_subject(app, "RECTIFICATION_OVERDUE")) == {f"{case_no}/3"}
    step("record_finding", finding_id="F2", text="复查", effective_date="2025-09-01")
    step("complete_rectification_item", item_id="2", evidence="拨付凭证",
         effective_date="2025-09-30")  # on its deadline

    found = by_subject(app, "RECTIFICATION_OVERDUE")
    assert set(found) == {f"{case_no}/1", f"{case_no}/3"}
    flag = found[f"{case_no}/1"]
    assert flag["signers"] == [director] and flag["region_code"] == VILLAGE
    assert flag["effective_date"] == "2025-09-01"
    assert flag["detail"]["completed_on"] is None
    assert found[f"{case_no}/3"]["detail"]["completed_on"] == "2025-07-20"

    hid = a_registered_household(world, "H1")
    with app.batch():  # the household's December step is stored before the case's steps
        run(world, "Household.AnnualReviewRecorded", hid,
            {"year": 2025, "effective_date": "2025-12-01", "income_per_capita_fen": 300_000,
             "members_count": 2, "notes": ""})
        step("add_rectification_item", item_id="4", problem="建立台账", deadline="2025-10-31",
             unit_code=f"U{VILLAGE}", official_id=director, effective_date="2025-10-01")
        step("complete_rectification_item", item_id="4", evidence="台账",
             effective_date="2025-10-15")  # in time, though stored after December
    assert set(by_subject(app, "RECTIFICATION_OVERDUE")) == {f"{case_no}/1", f"{case_no}/3"}
    in_time = get_flag(engine_for(app.database_url), f"RECTIFICATION_OVERDUE:{case_no}/4")
    assert in_time["withdrawn_position"] == last_position(app)
    assert_rebuild_gives_the_same_flags(app)


# synthetic events: what the domain refuses at the door -------------------------------------
def synthetic_events() -> list[Event]:
    stamp = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
    account, household = str(FundAccount.create_id(TOWNSHIP, "central")), "h-9"
    a, b, c = "official-a", "official-b", "official-c"
    path = {"province": PROVINCE, "city": CITY, "county": COUNTY, "township": TOWNSHIP}

    def sig(oid, role):
        return {"official_id": oid, "role": role, "key_id": "k", "signature": "s",
                "position": "township_finance_accountant", "position_region": TOWNSHIP,
                "responsibility": "handling"}

    def money(pos, version, step, movement, day, **kw):
        return Event(pos, account, version, f"FundAccount.{step}", {
            "timestamp": stamp, "movement_id": movement, "effective_date": day,
            "document_no": "d", "signatures": [sig(a, "preparer"), sig(b, "reviewer"),
                                               sig(c, "approver")], **kw})

    def paid(pos, version, movement, day):
        return money(pos, version, "Disbursed", movement, day, amount_fen=10_000,
                     purpose="hh_industry", payee_kind="household", payee_id=household,
                     project_id=None)

    registered = [
        Event(i + 1, oid, 1, "Official.Registered", {
            "timestamp": stamp, "code": oid, "name": oid, "unit_code": "U", "region_code": TOWNSHIP,
            "id_number_hash": oid.ljust(64, "0")}) for i, oid in enumerate((a, b, c))]
    received = money(4, 2, "Received", "m-0", D(2025, 1, 2), amount_fen=1_000_000,
                     purpose="special_fund", source="s")
    received.data["signatures"][2] = sig(a, "approver")  # preparer = approver
    return [
        *registered,
        Event(5, account, 1, "FundAccount.Opened", {
            "timestamp": stamp, "region_code": TOWNSHIP, "level": "township",
            "region_path": path, "fund_source": "central", "name": "t"}),
        received,
        Event(7, household, 1, "Household.Applied", {
            "timestamp": stamp, "household_code": "H9", "village_code": VILLAGE,
            "effective_date": D(2025, 1, 5), "head_name": "户主", "members": [
                {"name": "户主", "id_number_hash": "f" * 64, "relation": "head"}],
            "main_cause": "illness", "secondary_causes": [], "income_per_capita_fen": 1,
            "bank_account_hash": None, "region_path": {**path, "village": VILLAGE},
            "signatures": [sig(c, "preparer")]}),
        paid(8, 3, "m-1", D(2025, 3, 1)),  # not on the register
        Event(9, household, 2, "Household.ApprovedByCounty", {
            "timestamp": stamp, "effective_date": D(2025, 3, 2), "announcement_no": "n",
            "signatures": [sig(a, "preparer"), sig(b, "approver")]}),
        paid(10, 4, "m-2", D(2025, 3, 5)),  # on the register
    ]


def feed(engine, projection, events):
    with writer(engine).begin() as conn:
        rows = Rows(conn)
        projection.prefetch(events, rows)
        for e in events:
            projection.handle(e, rows)
        rows.flush()


def projected_in_each_batching(store, events):
    """The flags of ``events`` on a fresh database, fed in one batch and then one event per
    batch: yields each database's engine in turn."""
    for batches in (1, len(events)):
        engine = engine_for(store.new_database_url())
        projection = Flags(RuleSettings())
        ensure_schema(engine, [projection])
        size = len(events) // batches
        for i in range(0, len(events), size):
            feed(engine, projection, events[i:i + size])
        yield engine


def test_rules_the_domain_refuses_at_the_door_on_synthetic_events(store):
    """PAY_UNREGISTERED and preparer = approver, fed to the projection directly: in one
    batch, and one event per batch, with the same flags."""
    dumps = []
    for engine in projected_in_each_batching(store, synthetic_events()):
        [unregistered] = list_flags(engine, rule_id="PAY_UNREGISTERED")
        assert unregistered["subject_id"] == "m-1"
        assert unregistered["evidence"][:2] == [
            payment_evidence("m-1"), {"kind": "household", "ref": "h-9"}]
        assert unregistered["signers"] == ["official-a", "official-b", "official-c"]
        [same] = list_flags(engine, rule_id="SIGNERS_RELATED")
        assert (same["subject_id"], same["subject_kind"]) == (f"{T}@2", "step")
        assert same["detail"]["how"] == "same" and same["region_code"] == TOWNSHIP
        with engine.connect() as conn:
            dumps.append(dump(conn, TABLES))
    assert dumps[0] == dumps[1]


def test_removal_stored_before_a_payment_dated_after_it_is_found_by_the_payment(store):
    """The domain refuses a payment to a household already removed, so this order arises
    only when two transactions race (the payment read the household before the removal
    committed): the payment's own event must raise PAY_REMOVED, in any batching."""
    events = synthetic_events()
    stamp = events[0].data["timestamp"]
    removed = Event(11, "h-9", 3, "Household.RemovedFromRegister", {
        "timestamp": stamp, "effective_date": D(2025, 3, 6), "reason": "家庭成员为财政供养人员",
        "signatures": []})
    late = events[-1]
    late = Event(12, late.originator_id, 5, late.step,
                 {**late.data, "movement_id": "m-3", "effective_date": D(2025, 3, 7)})
    events += [removed, late]
    dumps = []
    for engine in projected_in_each_batching(store, events):
        [flag] = list_flags(engine, rule_id="PAY_REMOVED")
        assert (flag["subject_id"], flag["log_position"]) == ("m-3", 12)
        assert flag["evidence"][:2] == [payment_evidence("m-3"), {"kind": "household", "ref": "h-9"}]
        assert flag["signers"] == ["official-a", "official-b", "official-c"]
        assert flag["detail"]["status_since"] == "2025-03-06"
        with engine.connect() as conn:
            dumps.append(dump(conn, TABLES))
    assert dumps[0] == dumps[1]


def test_payment_stored_before_the_payees_registration_is_flagged_then_withdrawn(store):
    """A race the other way: the payment is stored before the county's approval, which is
    effective before the payment's date.  When the payment is handled the payee is not on
    the register; the approval, stored next, withdraws the flag."""
    events = synthetic_events()
    approval = events[-2]
    assert (approval.position, approval.step) == (9, "Household.ApprovedByCounty")
    events[-2] = Event(9, approval.originator_id, approval.version, approval.step,
                      {**approval.data, "effective_date": D(2025, 2, 20)})
    for engine in projected_in_each_batching(store, events):
        assert list_flags(engine, rule_id="PAY_UNREGISTERED") == []
        flag = get_flag(engine, "PAY_UNREGISTERED:m-1")
        assert (flag["standing"], flag["log_position"], flag["withdrawn_position"]) == (
            False, 8, 9)


# rebuilds, settings and the queries ----------------------------------------------------------
def test_changed_thresholds_rebuild_the_flags_with_the_new_ones(app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    pay(world, hid, 1_600_000, D(2025, 4, 10))
    second = pay(world, hid, 1_500_000, D(2025, 5, 5))
    defaults = {"SPLIT_PAYMENT": [second], "PAY_DUPLICATE": []}
    assert {r: [f["subject_id"] for f in flags(app, r)] for r in defaults} == defaults

    changed = Flags(RuleSettings(duplicate_period="quarter", approval_threshold_fen=4_000_000))
    runner.catch_up(app, projections=[changed])  # another version: rebuilt from position 0
    engine = engine_for(app.database_url)
    assert [f["subject_id"] for f in list_flags(engine, rule_id="PAY_DUPLICATE")] == [second]
    assert list_flags(engine, rule_id="SPLIT_PAYMENT") == []
    assert list_flags(engine, rule_id="PAY_DUPLICATE")[0]["detail"]["period"] == "2025-Q2"

    dispose(app.database_url)  # a restart with the default settings rebuilds them again
    assert {r: [f["subject_id"] for f in flags(app, r)] for r in defaults} == defaults


def test_queries_filter_by_region_subtree_rule_subject_severity_date_and_cursor(app, world):
    a_funded_account(world, TOWNSHIP, 5_000_000)
    h1 = str(a_registered_household(world, "H1"))
    h2 = str(a_registered_household(world, "H2", village=OTHER_VILLAGE))
    for hid in (h1, h2):
        pay(world, hid, day=D(2025, 3, 1))
        pay(world, hid, day=D(2025, 3, 2))
    for hid in (h1, h2):
        run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 3, 2)))
    runner.catch_up(app, names=["flags"])
    db = engine_for(app.database_url)
    standing = list_flags(db, limit=1000)
    counts = flag_counts(db)
    assert set(counts) == set(RULE_IDS)
    assert sum(counts.values()) == len(standing)
    assert (counts["PAY_REMOVED"], counts["PAY_DUPLICATE"]) == (2, 2)

    assert {f["rule_id"] for f in list_flags(db, region_code=VILLAGE)} >= {
        "PAY_REMOVED", "PAY_DUPLICATE"}
    assert all(f["region_path"]["village"] == VILLAGE for f in list_flags(db, region_code=VILLAGE))
    assert len(list_flags(db, region_code=TOWNSHIP, rule_id="PAY_REMOVED")) == 2
    assert flag_counts(db, OTHER_VILLAGE)["PAY_REMOVED"] == 1
    assert list_flags(db, region_code="990000") == []
    assert {f["severity"] for f in list_flags(db, severity="high")} == {"high"}
    assert len(list_flags(db, rule_id="PAY_REMOVED", date_from="2025-03-02",
                          date_to=D(2025, 3, 2))) == 2
    assert list_flags(db, rule_id="PAY_REMOVED", date_to="2025-03-01") == []
    [one] = list_flags(db, subject_id=list_flags(db, rule_id="PAY_REMOVED")[0]["subject_id"],
                       rule_id="PAY_REMOVED")
    assert get_flag(db, one["flag_id"]) == one

    pages, after = [], None
    while page := list_flags(db, after=after, limit=3):
        pages += page
        after = page[-1]["flag_id"]
    assert pages == standing and [f["flag_id"] for f in pages] == sorted(
        f["flag_id"] for f in pages)
    with pytest.raises(NotFound) as missing:
        get_flag(db, "PAY_REMOVED:nothing")
    assert missing.value.field == "flag_id"
    for bad in ({"rule_id": "NOPE"}, {"limit": 0}, {"severity": "grave"},
                {"date_from": "yesterday"}):
        with pytest.raises(InvalidInput):
            list_flags(db, **bad)
    assert_rebuild_gives_the_same_flags(app)

