"""Replay (projections/replay.py, ``zhuisu replay``): the past as it was.

- At a log position, the replayed village view and balances are exactly what the live
  read models showed when the log stood there.
- "As known on X" takes only what was recorded by the end of X (China Standard Time);
  "effective on X" takes everything known now, with statuses and money as of business
  date X — a backdated entry recorded after X tells them apart.
- An aggregate at a position or date is its state and events then.

Money here is the township account T's (村账乡代管), hand-computed in each test.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from cli import app as cli
from domain.errors import InvalidInput, NotFound
from domain.household import Household, Status
from factories import (
    TOWNSHIP,
    VILLAGE,
    a_county_world,
    a_funded_account,
    a_household_applied,
    a_registered_household,
    exit_steps,
    household_payment,
    identification_steps,
    official,
    official_id,
    recovery,
    removal,
    run,
)
from projections import queries, replay, runner
from store.engines import engine_for

D = dt.date
BEIJING = dt.timezone(dt.timedelta(hours=8))
cli_runner = CliRunner()


pytestmark = pytest.mark.usefixtures("close_read_models")


def head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def live(app: Any) -> dict[str, Any]:
    """What a reader saw now: the live read models, caught up."""
    runner.catch_up(app)
    engine = engine_for(app.database_url)
    return {"village": queries.village_view(engine, VILLAGE),
            "accounts": [a for a in queries.balances(engine, region_code=TOWNSHIP)
                         if a["region_code"] == TOWNSHIP]}


def township(found: dict[str, Any]) -> dict[str, Any]:
    [account] = found["accounts"]
    return account


def statuses(found: dict[str, Any]) -> dict[str, str]:
    return {e["code"]: e["status"] for e in found["village"]["register"]}


# at a log position -----------------------------------------------------------------------
def test_a_replay_at_each_position_is_the_live_view_seen_then(app: Any) -> None:
    world = a_county_world(app)
    seen: dict[int, dict[str, Any]] = {}

    h1 = a_registered_household(world, "H1")
    h2 = a_household_applied(world, "H2")
    t = a_funded_account(world, TOWNSHIP, 1_000_000)
    seen[head(app)] = live(app)
    pay = household_payment(h1, 300_000, day=D(2025, 3, 1))
    run(world, "FundAccount.Disbursed", t, pay)
    for step, content in identification_steps():
        run(world, step, h2, content)
    seen[head(app)] = live(app)
    for step, content in exit_steps("H1"):
        run(world, step, h1, content)
    a_household_applied(world, "H3")
    seen[head(app)] = live(app)
    run(world, "Household.RemovedFromRegister", h2, removal(D(2025, 6, 1)))
    run(world, "FundAccount.Recovered", t, recovery(pay["movement_id"], 100_000))
    run(world, "Household.Relapsed", h1, {"effective_date": "2026-03-01", "cause": "illness",
                                          "income_per_capita_fen": 300_000})
    seen[head(app)] = live(app)

    for position, then in seen.items():
        found = replay.village_as_of(app, VILLAGE, replay.moment(app, position=position))
        assert found["as_of"] == {"mode": "position", "date": None, "position": position,
                                  "head": head(app), "recorded_by": None}
        assert {"village": found["village"], "accounts": found["accounts"]} == then
    first, second, third, fourth = (seen[p] for p in sorted(seen))
    assert [statuses(s) for s in (first, second, third, fourth)] == [
        {"H1": "registered", "H2": "applied"},
        {"H1": "registered", "H2": "registered"},
        {"H1": "exited", "H2": "registered", "H3": "applied"},
        {"H1": "registered", "H2": "removed", "H3": "applied"}]
    assert [township(s)["balance_fen"] for s in (first, second, third, fourth)] == [
        1_000_000, 700_000, 700_000, 800_000]
    assert fourth["village"]["households"] == {
        "applied": 3, "registered": 1, "exited": 0, "removed": 1, "relapsed": 1,
        "rejected": 0, "in_identification": 1}


def test_a_position_beyond_the_log_or_no_point_at_all_is_refused(app: Any) -> None:
    a_county_world(app)
    with pytest.raises(InvalidInput) as beyond:
        replay.moment(app, position=head(app) + 1)
    assert beyond.value.field == "position"
    with pytest.raises(InvalidInput) as nothing:
        replay.moment(app)
    assert nothing.value.field == "as_of"
    with pytest.raises(NotFound) as before:  # the first event creates the province only
        replay.village_as_of(app, VILLAGE, replay.moment(app, position=1))
    assert before.value.field == "village_code"


# known on a date, effective on a date ----------------------------------------------------
class RecordClock:
    """Sets the record time: the application's clock, which stamps the events it stores."""

    def __init__(self, app: Any):
        self.now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        app.clock = lambda: self.now

    def set(self, *when: int) -> None:
        self.now = dt.datetime(*when, tzinfo=BEIJING).astimezone(dt.UTC)


@pytest.fixture
def backdated(app: Any) -> dict[str, Any]:
    """H1 and H2 registered and T funded 1,000,000, all recorded on 2025-06-30; a payment
    of 100,000 to H1 dated 06-30 recorded at 23:59 that day; on 07-01 at 00:01 Beijing
    time (still 06-30 in UTC) a payment of 200,000 to H1 backdated to 06-20 and H2's
    removal backdated to 06-25."""
    clock = RecordClock(app)
    clock.set(2025, 6, 30, 9, 0)
    world = a_county_world(app)
    h1, h2 = a_registered_household(world, "H1"), a_registered_household(world, "H2")
    t = a_funded_account(world, TOWNSHIP, 1_000_000)
    clock.set(2025, 6, 30, 23, 59)
    run(world, "FundAccount.Disbursed", t, household_payment(h1, 100_000, day=D(2025, 6, 30)))
    known_on_30th = head(app)
    clock.set(2025, 7, 1, 0, 1)
    run(world, "FundAccount.Disbursed", t, household_payment(h1, 200_000, day=D(2025, 6, 20)))
    run(world, "Household.RemovedFromRegister", h2, removal(D(2025, 6, 25)))
    return {"world": world, "h1": h1, "h2": h2, "t": t, "known_on_30th": known_on_30th}


def test_known_on_a_date_is_what_was_recorded_by_the_end_of_that_day(
        app: Any, backdated: dict[str, Any]) -> None:
    position, by = replay.position_known_on(app, D(2025, 6, 30))
    assert (position, by) == (backdated["known_on_30th"],
                              dt.datetime(2025, 6, 30, 15, 59, 59, 999999, tzinfo=dt.UTC))
    found = replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=D(2025, 6, 30),
                                                            mode="known"))
    assert found["as_of"] == {"mode": "known", "date": "2025-06-30", "position": position,
                              "head": head(app), "recorded_by": "2025-06-30T15:59:59.999999+00:00"}
    assert statuses(found) == {"H1": "registered", "H2": "registered"}
    assert (township(found)["paid_out_fen"], township(found)["balance_fen"]) == (
        100_000, 900_000)
    assert township(found)["idle_days"] == (D(2025, 6, 30) - D(2025, 1, 2)).days

    everything = replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=D(2025, 7, 1),
                                                                 mode="known"))
    assert everything["as_of"]["position"] == head(app)
    assert statuses(everything) == {"H1": "registered", "H2": "removed"}
    assert township(everything)["paid_out_fen"] == 300_000
    assert replay.position_known_on(app, D(2025, 6, 29))[0] == 0


def test_effective_on_a_date_counts_backdated_entries_known_now(
        app: Any, backdated: dict[str, Any]) -> None:
    on_30th = replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=D(2025, 6, 30)))
    assert on_30th["as_of"] == {"mode": "effective", "date": "2025-06-30",
                                "position": head(app), "head": head(app), "recorded_by": None}
    assert statuses(on_30th) == {"H1": "registered", "H2": "removed"}
    assert on_30th["village"]["households"]["removed"] == 1
    money = township(on_30th)
    assert (money["paid_out_fen"], money["balance_fen"], money["idle_since"]) == (
        300_000, 700_000, None)

    on_24th = replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=D(2025, 6, 24)))
    assert statuses(on_24th) == {"H1": "registered", "H2": "registered"}
    assert township(on_24th)["paid_out_fen"] == 200_000  # the backdated payment of 06-20

    # effective on the 24th as it was known at the end of the 30th: only the 06-30
    # payment was known, and it is dated after the 24th
    then = replay.village_as_of(app, VILLAGE, replay.moment(
        app, as_of=D(2025, 6, 24), position=backdated["known_on_30th"]))
    assert township(then)["paid_out_fen"] == 0

    h2 = app.load(Household, backdated["h2"])
    for day, status in ((D(2025, 6, 24), "registered"), (D(2025, 6, 25), "removed")):
        assert h2.status_on(day) is Status(status)
        found = replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=day))
        assert statuses(found)["H2"] == status


def test_effective_on_a_date_counts_a_recovery_only_with_its_payment(app: Any) -> None:
    world = a_county_world(app)
    h1 = a_registered_household(world, "H1")
    t = a_funded_account(world, TOWNSHIP, 1_000_000)
    pay = household_payment(h1, 300_000, day=D(2025, 5, 10))
    run(world, "FundAccount.Disbursed", t, pay)
    # a recovery dated before the payment it recovers (entered wrongly, but accepted)
    run(world, "FundAccount.Recovered", t, recovery(pay["movement_id"], 50_000,
                                                    day=D(2025, 5, 1)))
    counts = {day: township(replay.village_as_of(app, VILLAGE, replay.moment(app, as_of=day)))
              for day in (D(2025, 5, 5), D(2025, 5, 10))}
    assert [(a["paid_out_fen"], a["recovered_fen"], a["balance_fen"])
            for a in counts.values()] == [(0, 0, 1_000_000), (300_000, 50_000, 750_000)]


# one aggregate -------------------------------------------------------------------------------
def test_an_aggregate_as_of_a_position_or_a_date(app: Any, backdated: dict[str, Any]) -> None:
    at_30th = replay.moment(app, as_of=D(2025, 6, 30), mode="known")
    h2 = replay.aggregate_as_of(app, backdated["h2"], at_30th)
    assert (h2.version, h2.aggregate.status, len(h2.events)) == (7, Status.REGISTERED, 7)
    now = replay.aggregate_as_of(app, backdated["h2"], replay.moment(app, position=head(app)))
    assert (now.version, now.aggregate.status) == (8, Status.REMOVED)
    t = replay.aggregate_as_of(app, backdated["t"],
                               replay.moment(app, position=backdated["known_on_30th"]))
    assert (t.aggregate.balance, t.aggregate.paid_out) == (900_000, 100_000)

    effective = replay.aggregate_as_of(app, backdated["h2"],
                                       replay.moment(app, as_of=D(2025, 6, 24)))
    assert effective.version is None and effective.effective_state["status"] == "registered"
    assert [type(e).__qualname__ for e in effective.events][-1] == "Household.ApprovedByCounty"
    money = replay.aggregate_as_of(app, backdated["t"], replay.moment(app, as_of=D(2025, 6, 24)))
    assert money.effective_state["balance_fen"] == 800_000

    with pytest.raises(InvalidInput) as no_business_date:
        replay.aggregate_as_of(app, UUID(official_id(official("head", TOWNSHIP))),
                               replay.moment(app, as_of=D(2025, 6, 24)))
    assert no_business_date.value.field == "mode"
    with pytest.raises(NotFound) as not_yet:
        replay.aggregate_as_of(app, backdated["h1"], replay.moment(app, position=1))
    assert not_yet.value.field == "position"


# the command line ----------------------------------------------------------------------------
def invoke(app: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    return cli_runner.invoke(cli, ["replay", *args])


@pytest.mark.usefixtures("restore_logging")
def test_zhuisu_replay_prints_the_village_and_an_aggregate_as_known_then(
        app: Any, backdated: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    done = invoke(app, monkeypatch, "--village", VILLAGE, "--as-of", "2025-06-30", "--known")
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert found["village"]["households"]["registered"] == 2
    assert township(found)["balance_fen"] == 900_000
    position = backdated["known_on_30th"]
    assert (f"as known on 2025-06-30 (recorded by 2025-06-30 15:59:59 UTC): log position "
            f"{position} of {head(app)}") in done.stderr

    effective = invoke(app, monkeypatch, "--village", VILLAGE, "--as-of", "2025-06-30")
    assert json.loads(effective.stdout)["village"]["households"]["removed"] == 1

    shown = invoke(app, monkeypatch, "--aggregate", str(backdated["h2"]), "--position",
                   str(position))
    assert shown.exit_code == 0, shown.output
    h2 = json.loads(shown.stdout)
    assert (h2["type"], h2["version"], h2["state"]["status"]) == ("Household", 7, "registered")
    assert [e["type"] for e in h2["events"]][-1] == "Household.ApprovedByCounty"


@pytest.mark.usefixtures("restore_logging")
def test_zhuisu_replay_refuses_a_bad_date_or_an_unknown_village_plainly(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a_county_world(app)
    bad = invoke(app, monkeypatch, "--village", VILLAGE, "--as-of", "2025-02-30")
    assert bad.exit_code == 1
    assert "error: --as-of: expected a date YYYY-MM-DD, got '2025-02-30'" in bad.stderr
    unknown = invoke(app, monkeypatch, "--village", "999999", "--position", str(head(app)))
    assert unknown.exit_code == 2
    assert (f"error: NotFound [village_code]: no village 999999 at log position {head(app)}"
            in unknown.stderr)
    beyond = invoke(app, monkeypatch, "--village", VILLAGE, "--position", str(head(app) + 1))
    assert beyond.exit_code == 2
    assert f"error: InvalidInput [position]: the log ends at position {head(app)}" in beyond.stderr
    for args, message in [
            ((), "give --village CODE or --aggregate UUID"),
            (("--village", VILLAGE), "give --as-of YYYY-MM-DD or --position N"),
            (("--village", VILLAGE, "--known"), "--known and --effective qualify a date"),
            (("--aggregate", "H1", "--position", "1"), "--aggregate: expected an aggregate's "
                                                       "UUID, got 'H1'")]:
        refused = invoke(app, monkeypatch, *args)
        assert refused.exit_code == 1 and message in refused.stderr, refused.output
    assert "Traceback" not in unknown.output + bad.output
