"""Balances (资金余额): per account and per account × purpose, in integer fen.

For every account: money in (``received_fen`` from outside the system, ``allocated_in_fen``
from the level above), ``allocated_down_fen``, ``paid_out_fen``, ``recovered_fen`` (追回),
``balance_fen`` and ``idle_since``, the business date of the oldest money still unspent
(资金滞留; first in, first out, see ``projections.fifo``).  Reversals (冲正) are netted
out of the movement they correct and counted in ``reversed_fen``; so is a payment the bank
returned (退回, ``PaymentReturned``): the money is back on the account and no longer paid
out.  So, for each account,

    balance = received + allocated_in − allocated_down − paid_out + recovered

and over all accounts Σ balance + Σ (paid_out − recovered) = Σ received.  Region subtree,
fund source and purpose totals are sums over these rows (``projections.queries``).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Date, String, Table, Text

from projections import fifo
from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.tracking import metadata

MONEY = ("received_fen", "allocated_in_fen", "allocated_down_fen", "paid_out_fen",
         "recovered_fen", "reversed_fen")


def _money_columns() -> list[Column]:
    return [Column(name, BigInteger, nullable=False, default=0) for name in MONEY]


accounts = Table(
    "balance_accounts", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    Column("region_code", String(32), nullable=False),
    Column("level", String(16), nullable=False),
    Column("province", String(32)), Column("city", String(32)),
    Column("county", String(32)), Column("township", String(32)),
    Column("fund_source", String(16), nullable=False),
    *_money_columns(),
    Column("balance_fen", BigInteger, nullable=False),
    Column("idle_since", Date),
    Column("lots", JSON, nullable=False),  # the open FIFO lots (projections.fifo)
)

flows = Table(
    "balance_flows", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("purpose", String(48), primary_key=True),
    *_money_columns(),
)

movements = Table(  # what each movement was, so a reversal knows what it undoes
    "balance_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),
)


class Balances(Projection):
    name = "balances"
    version = 2  # 2: bank returns (PaymentReturned)
    tables = (accounts, flows, movements)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        ids = {(e.originator_id,) for e in events}
        rows.load(accounts, ids)
        rows.load(movements, [(e.originator_id, e["of_movement_id"]) for e in events
                              if "of_movement_id" in e.data])

    @handles("FundAccount.Opened")
    def opened(self, e: Event, rows: Rows) -> None:
        path = e["region_path"]
        rows.insert(accounts, {
            "account_id": e.originator_id, "name": e["name"], "region_code": e["region_code"],
            "level": e["level"], "province": path.get("province"), "city": path.get("city"),
            "county": path.get("county"), "township": path.get("township"),
            "fund_source": e["fund_source"], **dict.fromkeys(MONEY, 0), "balance_fen": 0,
            "idle_since": None, "lots": []})

    @handles("FundAccount.Received")
    def received(self, e: Event, rows: Rows) -> None:
        self._money_in(e, rows, "received_fen", e["movement_id"])
        self._movement(e, rows, "received")

    @handles("FundAccount.AllocationReceived")
    def allocation_received(self, e: Event, rows: Rows) -> None:
        self._money_in(e, rows, "allocated_in_fen", e["movement_id"])
        self._movement(e, rows, "allocation_received")

    @handles("FundAccount.Allocated")
    def allocated(self, e: Event, rows: Rows) -> None:
        self._money_out(e, rows, "allocated_down_fen")
        self._movement(e, rows, "allocated")

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        self._money_out(e, rows, "paid_out_fen")
        self._movement(e, rows, "disbursed")

    @handles("FundAccount.Recovered")
    def recovered(self, e: Event, rows: Rows) -> None:
        self._money_in(e, rows, "recovered_fen", e["movement_id"])
        self._movement(e, rows, "recovered")

    @handles("FundAccount.Reversed")
    def reversed(self, e: Event, rows: Rows) -> None:
        kind = rows.need(movements, e.originator_id, e["of_movement_id"])["kind"]
        if kind == "received":  # the receipt's money goes back where it came from
            self._money_out(e, rows, "received_fen", sign=-1, prefer=e["of_movement_id"])
        elif kind == "allocated":  # comes back up from the account below
            self._money_in(e, rows, "allocated_down_fen", e["movement_id"], sign=-1)
        else:  # a payment undone: the money comes back from the payee
            self._money_in(e, rows, "paid_out_fen", e["movement_id"], sign=-1)
        self._movement(e, rows, "reversed")

    @handles("FundAccount.PaymentReturned")
    def payment_returned(self, e: Event, rows: Rows) -> None:
        """退回: the bank could not credit a payment; as a payment reversed, the money comes
        back (a new FIFO lot) and no longer counts as paid out."""
        self._money_in(e, rows, "paid_out_fen", e["movement_id"], sign=-1)
        self._movement(e, rows, "returned")

    @handles("FundAccount.AllocationReversed")
    def allocation_reversed(self, e: Event, rows: Rows) -> None:
        self._money_out(e, rows, "allocated_in_fen", sign=-1, prefer=e["of_movement_id"])
        self._movement(e, rows, "allocation_reversed")

    # ------------------------------------------------------------------------------
    def _movement(self, e: Event, rows: Rows, kind: str) -> None:
        rows.insert(movements, {"account_id": e.originator_id, "movement_id": e["movement_id"],
                                "kind": kind})

    def _money_in(self, e: Event, rows: Rows, column: str, lot_id: str, sign: int = 1) -> None:
        account = self._add(e, rows, column, sign * e["amount_fen"])
        fifo.add(account["lots"], e.day, e.position, 0, lot_id, e["amount_fen"])
        account["idle_since"] = fifo.oldest(account["lots"])

    def _money_out(self, e: Event, rows: Rows, column: str, sign: int = 1,
                   prefer: str | None = None) -> None:
        account = self._add(e, rows, column, sign * e["amount_fen"])
        fifo.take(account["lots"], e["amount_fen"], prefer)
        account["idle_since"] = fifo.oldest(account["lots"])

    def _add(self, e: Event, rows: Rows, column: str, amount: int) -> Row:
        account = rows.need(accounts, e.originator_id)
        account[column] += amount
        if amount < 0:
            account["reversed_fen"] -= amount
        account["balance_fen"] = (account["received_fen"] + account["allocated_in_fen"]
                                  - account["allocated_down_fen"] - account["paid_out_fen"]
                                  + account["recovered_fen"])
        rows.changed(accounts, account)
        flow = rows.get(flows, e.originator_id, e["purpose"])
        if flow is None:
            flow = rows.insert(flows, {"account_id": e.originator_id, "purpose": e["purpose"],
                                       **dict.fromkeys(MONEY, 0)})
        flow[column] += amount
        if amount < 0:
            flow["reversed_fen"] -= amount
        rows.changed(flows, flow)
        return account
