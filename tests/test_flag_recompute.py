"""A threshold change recomputes only that rule's flags (``projections.flag_recompute``):
after ``recompute`` the flags read model equals the flags projection rebuilt from zero
with the new thresholds, the flags' version is the new one (no full rebuild follows), and
the live flags go on from there as a rebuild would.  A recompute within one region
changes only that region's flags of the rule.  The thresholds the flags were computed
with are recorded; a changed setting is reported.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from domain.fund_account import FundAccount
from factories import (
    CITY,
    COUNTY,
    PROVINCE,
    TOWNSHIP,
    a_funded_account,
    a_registered_household,
    allocation,
    household_payment,
    receipt,
    run,
)
from inspection.rules import RuleSettings
from projections import bluegreen, flag_recompute, runner
from projections.flags import Flags, list_flags
from projections.tracking import dump, tracking
from store.engines import engine_for

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
T = str(FundAccount.create_id(TOWNSHIP, "central"))
C = str(FundAccount.create_id(COUNTY, "central"))


def pay(world, household, amount=10_000, day=D(2025, 3, 1), purpose="hh_industry"):
    content = household_payment(household, amount, day=day, purpose=purpose)
    run(world, "FundAccount.Disbursed", T, content)
    return content["movement_id"]


def idle_money(world):
    """Money received early in 2025 and paid out from July on (idle funds by the clock)."""
    a_funded_account(world, TOWNSHIP, 1_000_000)  # 2025-01-02
    run(world, "FundAccount.Received", str(FundAccount.create_id(CITY, "central")),
        receipt(500_000, day=D(2025, 1, 3)))
    run(world, "FundAccount.Received", str(FundAccount.create_id(PROVINCE, "central")),
        receipt(500_000, day=D(2025, 1, 4)))
    run(world, "FundAccount.Received", C, receipt(500_000, day=D(2025, 1, 3)))
    run(world, "FundAccount.Allocated", C, allocation(T, 500_000, day=D(2025, 4, 1)))
    hid = str(a_registered_household(world, "H1"))
    pay(world, hid, day=D(2025, 4, 20))
    pay(world, hid, day=D(2025, 4, 21), purpose="hh_housing")
    return hid


def flags_dump(url):
    with engine_for(url).connect() as conn:
        return dump(conn, Flags.tables)


def rebuilt_with(store, app, settings):
    """The flags projection from zero with ``settings``, in another database."""
    url = store.new_database_url()
    runner.catch_up(app, projections=[Flags(settings)], engine=engine_for(url))
    return flags_dump(url)


def stored_version(app):
    with engine_for(app.database_url).connect() as conn:
        return conn.execute(select(tracking.c.version)
                            .where(tracking.c.name == "flags")).scalar()


def test_a_threshold_change_recomputes_the_rule_as_a_rebuild_would(store, app, world):
    hid = idle_money(world)
    runner.catch_up(app)
    engine = engine_for(app.database_url)
    assert flag_recompute.check(engine, RuleSettings())["status"] == "current"  # recorded
    assert list_flags(engine, rule_id="IDLE_FUNDS") == []  # 180 days: not yet

    shorter = RuleSettings(idle_days=90)
    report = flag_recompute.check(engine, shorter)
    assert report["status"] == "changed"
    assert report["changed"] == {"idle_days": {"was": 180, "now": 90}}
    assert report["rules"] == ["IDLE_FUNDS"]

    before = flags_dump(app.database_url)
    done = flag_recompute.recompute(app, "IDLE_FUNDS", settings=shorter)
    assert done["flags"] >= 1 and done["switched_version"] is True
    after = flags_dump(app.database_url)
    assert after == rebuilt_with(store, app, shorter)
    assert after["flags"] != before["flags"]
    assert {f["subject_id"] for f in list_flags(engine, rule_id="IDLE_FUNDS")} >= {T}
    assert stored_version(app) == Flags(shorter).version  # no full rebuild follows
    assert bluegreen.split(engine, [Flags(shorter)])[1] == ()  # nothing to build beside

    pay(world, hid, day=D(2025, 8, 1), purpose="hh_education")  # the log goes on
    runner.catch_up(app, projections=[Flags(shorter)])
    assert flags_dump(app.database_url) == rebuilt_with(store, app, shorter)
    assert flag_recompute.check(engine, shorter)["status"] == "current"


def test_a_recompute_in_one_region_changes_only_that_regions_flags(store, app, world):
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    pay(world, hid, 1_600_000, D(2025, 4, 10))
    second = pay(world, hid, 1_500_000, D(2025, 5, 5))
    runner.catch_up(app)
    engine = engine_for(app.database_url)
    assert list_flags(engine, rule_id="PAY_DUPLICATE") == []
    quarterly = RuleSettings(duplicate_period="quarter")

    flag_recompute.recompute(app, "PAY_DUPLICATE", region="990999", settings=quarterly)
    assert list_flags(engine, rule_id="PAY_DUPLICATE") == []  # another region: nothing
    assert stored_version(app) == Flags(RuleSettings()).version  # not every region

    done = flag_recompute.recompute(app, "PAY_DUPLICATE", region=TOWNSHIP, settings=quarterly)
    assert done["flags"] == 1 and done["switched_version"] is False
    want = [f for f in list_flags(engine_for(_elsewhere(store, app, quarterly)),
                                  rule_id="PAY_DUPLICATE", region_code=TOWNSHIP)]
    assert list_flags(engine, rule_id="PAY_DUPLICATE", region_code=TOWNSHIP) == want
    assert [f["subject_id"] for f in want] == [second]


def _elsewhere(store, app, settings):
    url = store.new_database_url()
    runner.catch_up(app, projections=[Flags(settings)], engine=engine_for(url))
    return url
