"""The demo county (demo/county.py): built through the real signed path, reproducible by seed,
every signature verifiable again from the stored event, households where the plan put them,
money conserved and never negative."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from demo.build import DemoSummary, StoreNotEmpty, build_demo, store_is_empty
from demo.county import demo_keys
from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.household import Household, Status
from domain.identity import check_digit
from domain.money import PURPOSES
from domain.official import Official
from domain.signed import signed_content, step_name
from domain.signing import step_message, verify_signature
from factories import sqlite_app


def stored_events(app: Zhuisu) -> list[Any]:
    last = app.recorder.max_notification_id() or 0
    return [app.mapper.to_domain_event(n)
            for n in app.recorder.select_notifications(start=1, limit=last)]


def comparable(event: Any) -> tuple[str, dict[str, Any]]:
    """Topic and decoded fields; the record timestamp is the one thing allowed to differ."""
    return step_name(event), {k: v for k, v in vars(event).items() if k != "timestamp"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Zhuisu, DemoSummary]:
    app = sqlite_app(tmp_path_factory.mktemp("tiny"))
    return app, build_demo(app, "tiny")


def test_same_seed_builds_the_same_event_contents(tiny, tmp_path: Path) -> None:
    app, summary = tiny
    again = sqlite_app(tmp_path / "again")
    assert build_demo(again, "tiny").events_written == summary.events_written
    first, second = stored_events(app), stored_events(again)
    assert len(first) == summary.events_written > 300
    assert [comparable(e) for e in first] == [comparable(e) for e in second]

    other = sqlite_app(tmp_path / "other-seed")
    build_demo(other, "tiny", seed=7)
    assert [comparable(e) for e in stored_events(other)] != [comparable(e) for e in first]


def test_every_stored_signature_verifies_again_with_the_officials_key(tiny) -> None:
    app, summary = tiny
    officials: dict[str, Official] = {}
    steps, signatures = Counter(), 0
    for event in stored_events(app):
        if "signatures" not in vars(event):
            continue
        step = step_name(event)
        steps[step] += 1
        assert event.signatures, step
        for sig in event.signatures:
            official = officials.get(sig["official_id"]) or app.load(Official, sig["official_id"])
            officials[sig["official_id"]] = official
            key = official.keys[sig["key_id"]]
            assert key.public_key == summary.keys[official.code].public_bytes
            message = step_message(step, event.originator_id, signed_content(event),
                                   sig["official_id"], sig["role"], sig["key_id"])
            assert verify_signature(key.public_key, sig["signature"], message), (step, sig)
            signatures += 1
    assert signatures > 2 * sum(steps.values()) * 0.8
    # even the tiny county walks every procedure the demo knows
    assert set(steps) >= {
        "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
        "Household.NoticePosted", "Household.ObjectionRaised", "Household.ObjectionResolved",
        "Household.ReviewedByTownship", "Household.ApprovedByCounty", "Household.HelperAssigned",
        "Household.AnnualReviewRecorded", "Household.ExitProposed", "Household.ExitAppraised",
        "Household.ExitConfirmedByHousehold", "Household.ExitVerifiedByTownship",
        "Household.ExitApprovedByCounty", "Household.RemovedFromRegister", "Household.Relapsed",
        "Project.Approved", "Project.BeneficiaryAdded", "Project.AcceptedOnCompletion",
        "FundAccount.Received", "FundAccount.Allocated", "FundAccount.Disbursed",
        "FundAccount.Recovered", "FundAccount.Reversed"}


def test_households_end_the_year_where_the_plan_put_them(tiny) -> None:
    app, summary = tiny
    assert len(summary.final_status) == summary.households == 20
    for code, status in summary.final_status.items():
        assert app.load(Household, Household.create_id(code)).status.value == status, code
    counts = Counter(summary.final_status.values())
    assert counts["registered"] and counts["exited"] and counts["removed"] and counts["rejected"]


def test_money_is_conserved_and_every_payment_had_a_registered_payee(tiny) -> None:
    app, summary = tiny
    accounts = [app.load(FundAccount, aid) for aid in summary.accounts.values()]
    assert all(a.balance >= 0 for a in accounts)
    received = sum(a.received for a in accounts)
    assert received > 0
    assert received == sum(a.balance + a.paid_out for a in accounts)
    assert {a.region_code for a in accounts if a.received} == {"990000"}  # money enters above
    for event in stored_events(app):
        if step_name(event) == "FundAccount.Disbursed" and event.payee_kind == "household":
            household = app.load(Household, event.payee_id)
            status = household.status_on(event.effective_date)
            assert status is Status.REGISTERED or (
                status is Status.EXITED and PURPOSES[event.purpose].allowed_after_exit), event


def test_no_account_goes_negative_in_record_order_or_in_business_date_order(tiny) -> None:
    app, _ = tiny
    money = [(i, e) for i, e in enumerate(stored_events(app))
             if step_name(e).startswith("FundAccount.") and "amount_fen" in vars(e)]
    kinds: dict[str, str] = {}
    for _, e in money:
        kinds[e.movement_id] = step_name(e)

    def delta(e: Any) -> int:
        sign = {"FundAccount.Received": 1, "FundAccount.Allocated": -1,
                "FundAccount.AllocationReceived": 1, "FundAccount.Disbursed": -1,
                "FundAccount.Recovered": 1, "FundAccount.AllocationReversed": -1}.get(step_name(e))
        if sign is None:  # Reversed: undoes what the original did
            sign = -1 if kinds[e.of_movement_id] == "FundAccount.Received" else 1
        return sign * e.amount_fen

    for order in (money, sorted(money, key=lambda x: (x[1].effective_date, x[0]))):
        balance: dict[Any, int] = defaultdict(int)
        for _, e in order:
            balance[e.originator_id] += delta(e)
            assert balance[e.originator_id] >= 0, (step_name(e), e.effective_date)
    assert any(e.effective_date >= dt.date(2025, 6, 1) for _, e in money)


def test_refuses_a_store_that_is_not_empty_and_hands_out_keys_to_sign_more(tiny, tmp_path) -> None:
    app, summary = tiny
    assert store_is_empty(sqlite_app(tmp_path / "empty"))
    assert not store_is_empty(app)
    with pytest.raises(StoreNotEmpty, match="allow_existing"):
        build_demo(app, "tiny")

    keys = demo_keys(summary.seed, "tiny")
    assert {k: v.key_id for k, v in keys.items()} == {k: v.key_id for k, v in summary.keys.items()}
    code = next(c for c, s in summary.final_status.items() if s == "registered")
    village = code[1:13]  # H + 12-digit village code + 4-digit number
    content = {"year": 2026, "effective_date": "2026-01-05", "income_per_capita_fen": 650_000,
               "members_count": 3, "notes": "demo keys still sign"}
    command = summary.sign("Household.AnnualReviewRecorded", str(Household.create_id(code)),
                           content, [(f"{village}-accountant", "preparer"),
                                     (f"{village[:9]}-poverty-officer", "reviewer")])
    assert app.execute(command)["recorded"]


def test_each_step_is_recorded_0_to_3_days_after_its_business_date_on_a_simulated_clock(
        tiny) -> None:
    """Record time follows the business dates while the demo is written (nothing looks
    backdated), in office hours in China; afterwards the app's clock is its own again."""
    app, summary = tiny
    lags = Counter()
    for event in stored_events(app)[:summary.events_written]:
        day = vars(event).get("effective_date")
        if day is None:
            continue
        assert event.timestamp.tzinfo is not None
        lags[(event.timestamp.date() - day).days] += 1
        assert 1 <= event.timestamp.hour < 10, event.timestamp  # 09:00–18:00 CST
    assert set(lags) <= {0, 1, 2, 3} and len(lags) == 4
    now = dt.datetime.now(dt.timezone.utc)
    assert abs(app.clock() - now) < dt.timedelta(minutes=1)
    number = "99012119900101001" + check_digit("99012119900101001")
    app.register_official("after-the-demo", "演示之后", "990121-PO", number)
    official = app.load(Official, Official.create_id("after-the-demo"))
    assert abs(official.modified_on - now) < dt.timedelta(minutes=1)  # the framework's clock


def test_a_custom_size_names_townships_villages_and_households(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    summary = build_demo(app, "2x1x6")
    assert summary.households == 12
    assert {code[1:10] for code in summary.final_status} == {"990121101", "990121102"}
    with pytest.raises(ValueError, match="TxVxH"):
        build_demo(sqlite_app(tmp_path / "bad"), "2x1")
