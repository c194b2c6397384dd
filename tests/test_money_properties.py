"""The conservation law of money, for any sequence of money commands.

Money in (received at the top, net of reversed receipts) = Σ balances + Σ paid out (net
of recoveries and reversed payments), across all accounts; no balance is ever negative;
a refused command writes nothing; a retried command writes nothing.  Checked after every
command on the aggregates the app holds, and at the end on aggregates reloaded from the
store by another application instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.errors import (
    AlreadyReversed,
    HouseholdNotRegistered,
    InsufficientFunds,
    InvalidInput,
)
from domain.fund_account import FundAccount
from factories import (
    CITY,
    COUNTY,
    OTHER_VILLAGE,
    PROVINCE,
    TOWNSHIP,
    VILLAGE,
    a_county_world,
    a_household_applied,
    a_registered_household,
    allocation,
    household_payment,
    receipt,
    recovery,
    reversal,
    sign,
)

LEVELS = [PROVINCE, CITY, COUNTY, TOWNSHIP]
EXPECTED_REFUSALS = (InsufficientFunds, InvalidInput, AlreadyReversed, HouseholdNotRegistered)

amounts = st.integers(min_value=1, max_value=3_000_000)
# Amounts taken out are a percentage of what is there: above 100 the command must be refused.
percent = st.integers(min_value=1, max_value=110)
pick = st.integers(min_value=0, max_value=1_000)
# Every sequence starts by funding the province and allocating some of it down the chain,
# so that payments further down have money to draw on; then anything goes.
funding = st.tuples(amounts, st.integers(1, 100), st.integers(1, 100), st.integers(1, 100)).map(
    lambda f: [("receive", f[0]), ("allocate", 0, f[1]), ("allocate", 1, f[2]),
               ("allocate", 2, f[3])])
anything = st.lists(st.one_of(
    st.tuples(st.just("receive"), amounts),
    st.tuples(st.just("allocate"), st.integers(0, 2), percent),
    st.tuples(st.just("pay"), st.sampled_from([COUNTY, TOWNSHIP]), st.integers(0, 2), percent,
              st.sampled_from(["hh_industry", "hh_education"])),
    st.tuples(st.just("recover"), pick, percent),
    st.tuples(st.just("reverse"), pick, st.booleans()),
    st.tuples(st.just("retry"), pick),
), min_size=5, max_size=20)
money_commands = st.tuples(funding, anything).map(lambda t: t[0] + t[1])


def share(total: int, pct: int) -> int:
    return max(1, total * pct // 100)


@dataclass
class Run:
    """What the test has done so far: accepted commands and the money that came in."""

    world: Any
    households: list
    money_in: int = 0
    accepted: list[dict] = field(default_factory=list)
    payments: list[tuple[Any, str]] = field(default_factory=list)  # (account, movement id)
    movements: list[tuple[Any, str]] = field(default_factory=list)  # every accepted movement

    @property
    def app(self):
        return self.world.app

    def command(self, op: tuple) -> dict | None:
        w, kind = self.world, op[0]
        if kind == "receive":
            return sign(w, "FundAccount.Received", w.account(PROVINCE), receipt(op[1]))
        if kind == "allocate":
            source, target = w.account(LEVELS[op[1]]), w.account(LEVELS[op[1] + 1])
            return sign(w, "FundAccount.Allocated", source,
                        allocation(target, share(w.balance(source), op[2])))
        if kind == "pay":
            _, region, who, pct, purpose = op
            amount = share(w.balance(w.account(region)), pct)
            return sign(w, "FundAccount.Disbursed", w.account(region),
                        household_payment(self.households[who], amount, purpose=purpose))
        if kind == "recover" and self.payments:
            account, mid = self.payments[op[1] % len(self.payments)]
            m = self.app.load(FundAccount, account).movements[mid]
            return sign(w, "FundAccount.Recovered", account,
                        recovery(mid, share(m["amount"] - m["refunded"], op[2]),
                                 purpose=m["purpose"]))
        if kind == "reverse" and self.movements:
            account, mid = self.movements[op[1] % len(self.movements)]
            m = self.app.load(FundAccount, account).movements[mid]
            exact = m["amount"] - m["refunded"]
            return sign(w, "FundAccount.Reversed", account,
                        reversal(mid, exact if op[2] else exact + 1, purpose=m["purpose"]))
        if kind == "retry" and self.accepted:
            return self.accepted[op[1] % len(self.accepted)]
        return None

    def record(self, op: tuple, command: dict) -> None:
        """Book an accepted command in the test's own ledger."""
        content, account = command["content"], command["subject"]
        self.accepted.append(command)
        self.movements.append((account, content["movement_id"]))
        if op[0] == "receive":
            self.money_in += content["amount_fen"]
        elif op[0] == "pay":
            self.payments.append((account, content["movement_id"]))
        elif op[0] == "reverse":
            original = self.app.load(FundAccount, account).movements[content["of_movement_id"]]
            if original["kind"] == "received":
                self.money_in -= content["amount_fen"]


def totals(app, world) -> list[tuple[int, int, int]]:
    """(balance, received, paid out) of every account, each checked to be non-negative."""
    accounts = [app.load(FundAccount, world.account(region)) for region in LEVELS]
    for a in accounts:
        assert a.balance >= 0, (a.name, a.balance)
    return [(a.balance, a.received, a.paid_out) for a in accounts]


def assert_conserved(state: list[tuple[int, int, int]], money_in: int) -> None:
    balances = sum(b for b, _, _ in state)
    received = sum(r for _, r, _ in state)
    paid_out = sum(p for _, _, p in state)
    assert received == money_in
    assert received == balances + paid_out


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=money_commands)
def test_money_in_equals_balances_plus_paid_out_and_no_balance_goes_negative(store, ops):
    with store.fresh_app() as app:
        world = a_county_world(app)
        with app.batch():
            households = [a_registered_household(world, "H1", village=VILLAGE),
                          a_registered_household(world, "H2", village=OTHER_VILLAGE),
                          a_household_applied(world, "H3")]  # never registered
        run = Run(world, households)

        for op in ops:
            command = run.command(op)
            if command is None:
                continue
            before = app.recorder.max_notification_id()
            try:
                result = app.execute(command)
            except EXPECTED_REFUSALS as refusal:
                event(f"{op[0]} refused: {refusal.rule}")
                assert app.recorder.max_notification_id() == before, "a refusal wrote events"
            else:
                if op[0] == "retry":
                    assert result["recorded"] is False
                    assert app.recorder.max_notification_id() == before
                else:
                    assert result["recorded"] is True
                    event(f"{op[0]} accepted")
                    run.record(op, command)
            assert_conserved(totals(app, world), run.money_in)

        in_memory = totals(app, world)
        reloaded = totals(store.app_on(app.database_url), world)
        assert reloaded == in_memory
        assert_conserved(reloaded, run.money_in)
