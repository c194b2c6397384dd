"""Scoped replay (projections/replay.py, ``scope="scoped"``) answers as the full replay does.

- For random histories — households applying, going through identification, getting a
  helper, exiting, removed, relapsing, in two villages; money received, allocated down
  to the township (two accounts there), paid to households, reversed, recovered, each
  command recorded some hours after the last — and random questions (a village, a
  household or an account; at a log position, as known on a date, effective on a date
  with or without a position), the scoped replay gives exactly the full replay's answer
  (or the same refusal), and it did read from the index (no silent fallback).
- The index behind the position asked is caught up first; an index that cannot answer
  (it could not take an event by then, or cannot be caught up) means a full replay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from domain.errors import DomainError
from domain.fund_account import FundAccount
from domain.household import Household
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    a_county_world,
    a_registered_household,
    allocation,
    application,
    exit_steps,
    household_payment,
    identification_steps,
    official,
    official_id,
    receipt,
    recovery,
    removal,
    reversal,
    run,
)
from projections import replay, runner
from projections.aggregates import aggregate_view
from projections.replay_index import ReplayIndex
from projections.tracking import record_failure, tracking, truncate
from store.engines import engine_for, writer

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
START = dt.datetime(2025, 2, 1, 1, 0, tzinfo=dt.UTC)  # business dates are ≤ record date + 1
VILLAGES = (VILLAGE, OTHER_VILLAGE)
HELPERS = (official("director", VILLAGE), official("accountant", OTHER_VILLAGE),
           official("head", TOWNSHIP))
INDEX = ReplayIndex.name
# Each example builds a store and replays it dozens of times: shrinking a failure would
# take many minutes, and the failing history and questions are printed as found.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)




def share(total: int, pct: int) -> int:
    return max(1, total * pct // 100)


@dataclass
class History:
    """A random history as it is made: households (id, applied on, steps done) and the
    money movements accepted so far."""

    app: Any
    world: Any
    clock: list[dt.datetime]  # the record time of the next command
    households: list[list[Any]] = field(default_factory=list)
    movements: list[tuple[UUID, str]] = field(default_factory=list)  # (account, movement)
    payments: list[tuple[UUID, str]] = field(default_factory=list)
    world_end: int = 0  # the log position where the random history starts

    def day(self, back: int) -> D:
        """A business date ``back`` days before the record date (entered late)."""
        return self.clock[0].date() - dt.timedelta(days=back)

    def household(self, pick: int) -> list[Any] | None:
        return self.households[pick % len(self.households)] if self.households else None

    def do(self, op: tuple) -> None:
        w, kind = self.world, op[0]
        if kind == "apply":
            code = f"H{len(self.households) + 1}"
            hid = Household.create_id(code)
            run(w, "Household.Applied", hid, application(w, code, village=VILLAGES[op[1]],
                                                             day=self.day(op[2])))
            self.households.append([hid, self.day(op[2]), 0])
        elif kind == "advance" and (h := self.household(op[1])):
            for step, content in identification_steps(h[1])[h[2]:h[2] + op[2]]:
                run(w, step, h[0], content)
                h[2] += 1
        elif kind == "helper" and (h := self.household(op[1])):
            run(w, "Household.HelperAssigned", h[0], {
                "official_id": official_id(HELPERS[op[2]]),
                "effective_date": self.day(op[3]).isoformat()})
        elif kind == "exit" and (h := self.household(op[1])):
            for step, content in exit_steps(f"H{self.households.index(h) + 1}",
                                            proposed_on=self.day(10 + op[2])):
                run(w, step, h[0], content)
        elif kind == "remove" and (h := self.household(op[1])):
            run(w, "Household.RemovedFromRegister", h[0],
                removal(self.day(op[2])))
        elif kind == "relapse" and (h := self.household(op[1])):
            run(w, "Household.Relapsed", h[0], {
                "effective_date": self.day(op[2]).isoformat(),
                "cause": "illness", "income_per_capita_fen": 300_000})
        elif kind == "fund":
            account = (w.account(COUNTY), w.account(TOWNSHIP), w.account(TOWNSHIP, "county"),
                       )[op[1]]
            self._money(w, "FundAccount.Received", account, receipt(op[2], day=self.day(op[3])))
        elif kind == "allocate":
            source = w.account(COUNTY)
            target = w.account(TOWNSHIP)
            amount = share(w.balance(source), op[2])
            self._money(w, "FundAccount.Allocated", source,
                        allocation(target, amount, day=self.day(op[3])))
        elif kind == "pay" and (h := self.household(op[1])):
            account = w.account(TOWNSHIP, ("central", "county")[op[4]])
            amount = share(w.balance(account), op[2])
            self._money(w, "FundAccount.Disbursed", account,
                        household_payment(h[0], amount, day=self.day(op[3])), payment=True)
        elif kind == "recover" and self.payments:
            account, mid = self.payments[op[1] % len(self.payments)]
            m = self.app.load(FundAccount, account).movements[mid]
            self._money(w, "FundAccount.Recovered", account, recovery(
                mid, share(m["amount"] - m["refunded"], op[2]), purpose=m["purpose"],
                day=self.day(op[3])))
        elif kind == "reverse" and self.movements:
            account, mid = self.movements[op[1] % len(self.movements)]
            m = self.app.load(FundAccount, account).movements[mid]
            self._money(w, "FundAccount.Reversed", account, reversal(
                mid, m["amount"] - m["refunded"], purpose=m["purpose"], day=self.day(op[2])))

    def _money(self, w: Any, step: str, account: UUID, content: dict[str, Any],
               payment: bool = False) -> None:
        run(w, step, account, content)
        self.movements.append((account, content["movement_id"]))
        if payment:
            self.payments.append((account, content["movement_id"]))


pick = st.integers(0, 50)
offset = st.integers(0, 40)  # days a business date is before its record date
ops = st.lists(st.tuples(st.integers(1, 240), st.one_of(  # (hours after the last, op)
    st.tuples(st.just("apply"), st.integers(0, 1), st.integers(0, 60)),
    st.tuples(st.just("advance"), pick, st.integers(1, 6)),
    st.tuples(st.just("helper"), pick, st.integers(0, 2), st.integers(0, 30)),
    st.tuples(st.just("exit"), pick, offset),
    st.tuples(st.just("remove"), pick, offset),
    st.tuples(st.just("relapse"), pick, offset),
    st.tuples(st.just("fund"), st.integers(0, 2), st.integers(1, 5_000_000), offset),
    st.tuples(st.just("allocate"), st.just(0), st.integers(1, 100), offset),
    st.tuples(st.just("pay"), pick, st.integers(1, 60), offset, st.integers(0, 1)),
    st.tuples(st.just("recover"), pick, st.integers(1, 100), offset),
    st.tuples(st.just("reverse"), pick, offset),
)), min_size=4, max_size=30)
# a question: (target kind, which, mode, date offset from the first record day, position %)
questions = st.lists(st.tuples(
    st.sampled_from(["village", "household", "account"]), pick,
    st.sampled_from(["position", "known", "effective", "effective_at"]),
    st.integers(-2, 320), st.integers(0, 100)), min_size=3, max_size=8)


def outcome(fn: Any) -> Any:
    """The answer, or the refusal as (type, field, message)."""
    try:
        return fn()
    except DomainError as exc:
        return (type(exc).__name__, getattr(exc, "field", None), str(exc))


def aggregate_answer(found: replay.AggregateAsOf) -> Any:
    view = aggregate_view(found)
    return view, found.effective_state


def point(h: History, head: int, pct: int) -> int:
    """A log position: mostly within the history made after the world (10 % before)."""
    if pct < 10:
        return h.world_end * pct // 10
    return h.world_end + (head - h.world_end) * (pct - 10) // 90


def ask(h: History, question: tuple, accounts: list[UUID], scope: str) -> Any:
    kind, which, mode, offset_days, pct = question
    app = h.app
    head = app.recorder.max_notification_id() or 0
    date = START.date() + dt.timedelta(days=offset_days)
    at = outcome(lambda: replay.moment(
        app, as_of=None if mode == "position" else date,
        mode="known" if mode == "known" else "effective",
        position=point(h, head, pct) if mode in ("position", "effective_at") else None))
    if not isinstance(at, replay.Moment):
        return at
    if kind == "village":
        code = VILLAGES[which % 2]
        return outcome(lambda: replay.village_as_of(app, code, at, scope=scope))
    ids = ([h[0] for h in h.households] if kind == "household" else accounts)
    if not ids:
        return None
    subject = ids[which % len(ids)]
    return outcome(lambda: aggregate_answer(replay.aggregate_as_of(app, subject, at,
                                                                   scope=scope)))


@settings(max_examples=12, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=ops, asked=questions)
def test_scoped_replay_answers_as_the_full_replay(store: Any, history: list, asked: list) -> None:
    with store.fresh_app() as app:
        clock = [START]
        app.clock = lambda: clock[0]
        world = a_county_world(app)
        app.open_account(TOWNSHIP, "county")
        h = History(app, world, clock)
        with app.batch():
            a_registered_household(world, "H0", village=OTHER_VILLAGE)
        h.households.append([Household.create_id("H0"), D(2025, 1, 5), 6])
        h.world_end = app.recorder.max_notification_id()
        for hours, op in history:
            clock[0] += dt.timedelta(hours=hours)
            try:
                h.do(op)
            except DomainError:
                event(f"{op[0]} refused")  # nothing written, the history goes on
            else:
                event(f"{op[0]} done")
        runner.catch_up(app, names=[INDEX])
        accounts = [world.account(COUNTY), world.account(TOWNSHIP),
                    world.account(TOWNSHIP, "county")]
        for question in asked:
            scoped = ask(h, question, accounts, "scoped")
            full = ask(h, question, accounts, "full")
            assert scoped == full, question
            event(f"{question[0]} {question[2]}: "
                  f"{'refused' if isinstance(full, tuple) and len(full) == 3 else 'answered'}")
        head = app.recorder.max_notification_id()
        assert replay.scope_ids(app, "village", VILLAGE, head) is not None  # no fallback


# the index behind, or unable to answer -------------------------------------------------------
def a_history(app: Any) -> tuple[Any, UUID, int]:
    world = a_county_world(app)
    hid = a_registered_household(world, "H1")
    run(world, "Household.HelperAssigned", hid,
        {"official_id": official_id(HELPERS[0]), "effective_date": "2025-02-01"})
    account = world.account(TOWNSHIP)
    run(world, "FundAccount.Received", account, receipt(1_000_000))
    run(world, "FundAccount.Disbursed", account, household_payment(hid, 300_000))
    runner.catch_up(app)
    return world, hid, app.recorder.max_notification_id()


def index_position(app: Any) -> int:
    with engine_for(app.database_url).connect() as conn:
        return conn.execute(tracking.select().where(tracking.c.name == INDEX)).one().position


def test_an_index_behind_the_position_is_caught_up_first(app: Any) -> None:
    _, hid, head = a_history(app)
    with writer(engine_for(app.database_url)).begin() as conn:  # as a new deployment finds it
        truncate(conn, ReplayIndex.tables)
        conn.execute(update(tracking).where(tracking.c.name == INDEX).values(position=0))
    at = replay.moment(app, position=head)
    ids = replay.scope_ids(app, "village", VILLAGE, head)
    assert index_position(app) == head
    assert set(ids) >= {str(hid), official_id(HELPERS[0]), str(FundAccount.create_id(
        TOWNSHIP, "central"))}
    assert replay.village_as_of(app, VILLAGE, at) == replay.village_as_of(app, VILLAGE, at,
                                                                         scope="full")
    assert (replay.scope_ids(app, "household", str(hid), head)
            == sorted({str(hid), official_id(HELPERS[0])}))


def test_an_index_that_cannot_answer_means_a_full_replay(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, hid, head = a_history(app)
    at = replay.moment(app, as_of=D(2025, 3, 1))
    full = replay.village_as_of(app, VILLAGE, at, scope="full")
    with writer(engine_for(app.database_url)).begin() as conn:  # an event it could not take
        record_failure(conn, INDEX, head - 1, "Household.Applied", str(hid), 1, "ValueError: x")
    assert replay.scope_ids(app, "village", VILLAGE, head) is None
    assert replay.scope_ids(app, "village", VILLAGE, head - 2) is not None  # before it: fine
    assert replay.village_as_of(app, VILLAGE, at) == full

    with writer(engine_for(app.database_url)).begin() as conn:  # behind, and cannot catch up
        conn.execute(update(tracking).where(tracking.c.name == INDEX).values(position=1))

    real = runner.catch_up

    def broken(*args: Any, **kw: Any) -> Any:
        if kw.get("names") == [INDEX]:
            raise RuntimeError("the read models are read-only here")
        return real(*args, **kw)

    monkeypatch.setattr(runner, "catch_up", broken)
    assert replay.scope_ids(app, "village", VILLAGE, 5) is None
    assert replay.village_as_of(app, VILLAGE, at) == full
    with pytest.raises(ValueError):
        replay.village_as_of(app, VILLAGE, at, scope="some")
