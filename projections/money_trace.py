"""Money trace (资金追溯): which money paid whom, down from any allocation and up from any payment.

Attribution is first in, first out per account (``projections.fifo``).  Every amount that
enters an account is a *lot* (``trace_lots``); every amount that leaves it is drawn from
lots as *draws* (``trace_draws``), each covering an exact fen range of its lot
``[lot_offset, lot_offset + amount)`` and of its movement ``[movement_offset, …)``.
A lot says where its money came from:

- ``external``: a receipt (``Received``) — the root, with its source;
- ``transfer``: money sent by another account in the movement ``movement_id``: an
  allocation from above (the lot ``(B, m)`` of ``AllocationReceived``) or an allocation
  reversed back up (the lot ``(A, r)`` of ``Reversed``, drawn on B by
  ``AllocationReversed``); its fen ``x`` is fen ``x`` of that movement's draws on the
  sending account;
- ``return``: money back from a payee (``Recovered``, ``Reversed`` of a payment, or
  ``PaymentReturned``: the bank could not credit it, 退回).  It
  is returned along the payment's draws, last drawn first, so each returned piece is a new
  lot ``r#k`` dated at the return's business date whose fen ``x`` is fen
  ``parent_offset + x`` of the lot the payment drew it from.  The payment's draw keeps
  its range; its ``returned_fen`` tail is what came back.

A reversed receipt is a draw (the money goes back to its source); a reversed allocation is
money flowing back up, drawn on the lower account from the reversed allocation's lot
first.  So every fen in the system has one exact path, and the walks in
``projections.walks`` follow ranges up and down without double counting.

The two halves of a transfer are events of two aggregates stored in one transaction, in
either order (a writer saving several aggregates at once may store each one's events
together).  So each handler
only touches its own account: the receiving lot is made from the receiving half alone,
the draws from the sending half alone, and the walks join them when both are there.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Date, Index, Integer, String, Table, Text

from projections import fifo
from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.tracking import metadata

accounts = Table(
    "trace_accounts", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    Column("region_code", String(32), nullable=False),
    Column("level", String(16), nullable=False),
    Column("fund_source", String(16), nullable=False),
    Column("lots", JSON, nullable=False),  # open FIFO lots (projections.fifo)
)

movements = Table(
    "trace_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    # received | allocated | allocation_received | disbursed | recovered | reversed
    # | allocation_reversed | returned (退回 by the bank)
    Column("kind", String(24), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("purpose", String(48), nullable=False),
    Column("document_no", Text, nullable=False),
    Column("counterparty_id", String(36)),  # the other account of a transfer
    Column("source", Text),  # of a receipt
    Column("payee_kind", String(16)),
    Column("payee_id", String(64)),
    Column("project_id", String(36)),
    Column("of_movement_id", String(36)),  # of a recovery or reversal
    Column("reason", Text),
    Column("returned_fen", BigInteger, nullable=False),  # of a payment: recovered, reversed
    # or returned by the bank
    Column("reversed_by", String(36)),
    Column("draws", Integer, nullable=False),  # number of trace_draws rows
    Column("position", BigInteger, nullable=False),  # of its event (see resp_signatures)
)
Index("trace_movements_movement", movements.c.movement_id)
Index("trace_movements_payee", movements.c.payee_id, movements.c.payee_kind)
Index("trace_movements_of", movements.c.account_id, movements.c.of_movement_id)

lots = Table(
    "trace_lots", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("lot_id", String(48), primary_key=True),
    Column("effective_date", Date, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("k", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("drawn_fen", BigInteger, nullable=False),
    Column("origin", String(16), nullable=False),  # external | transfer | return
    Column("movement_id", String(36), nullable=False),
    Column("from_account_id", String(36)),  # transfer
    Column("parent_lot_id", String(48)),  # return
    Column("parent_offset", BigInteger),  # return
)
Index("trace_lots_parent", lots.c.account_id, lots.c.parent_lot_id)

draws = Table(
    "trace_draws", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("k", Integer, primary_key=True),
    Column("lot_id", String(48), nullable=False),
    Column("lot_offset", BigInteger, nullable=False),
    Column("movement_offset", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("returned_fen", BigInteger, nullable=False),
)
Index("trace_draws_lot", draws.c.account_id, draws.c.lot_id)

class MoneyTrace(Projection):
    name = "money_trace"
    version = 2  # 2: bank returns (PaymentReturned)
    tables = (accounts, movements, lots, draws)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(accounts, {(e.originator_id,) for e in events})
        rows.load(movements, [(e.originator_id, e["of_movement_id"]) for e in events
                              if "of_movement_id" in e.data])

    @handles("FundAccount.Opened")
    def opened(self, e: Event, rows: Rows) -> None:
        rows.insert(accounts, {"account_id": e.originator_id, "name": e["name"],
                               "region_code": e["region_code"], "level": e["level"],
                               "fund_source": e["fund_source"], "lots": []})

    @handles("FundAccount.Received")
    def received(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows, "received", source=e["source"])
        self._lot(e, rows, e.originator_id, e["movement_id"], "external")

    @handles("FundAccount.Allocated")
    def allocated(self, e: Event, rows: Rows) -> None:
        m = self._movement(e, rows, "allocated", counterparty_id=e["to_account_id"])
        self._draw(rows, m)

    @handles("FundAccount.AllocationReceived")
    def allocation_received(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows, "allocation_received", counterparty_id=e["from_account_id"])
        self._lot(e, rows, e.originator_id, e["movement_id"], "transfer",
                  from_account_id=e["from_account_id"])

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        m = self._movement(e, rows, "disbursed", payee_kind=e["payee_kind"],
                           payee_id=e["payee_id"], project_id=e["project_id"])
        self._draw(rows, m)

    @handles("FundAccount.Recovered")
    def recovered(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows, "recovered", of_movement_id=e["of_movement_id"],
                       reason=e["reason"])
        self._return(e, rows, rows.need(movements, e.originator_id, e["of_movement_id"]))

    @handles("FundAccount.PaymentReturned")
    def payment_returned(self, e: Event, rows: Rows) -> None:
        """退回: back along the payment's draws, as a recovery."""
        self._movement(e, rows, "returned", of_movement_id=e["of_movement_id"],
                       reason=e["reason"])
        self._return(e, rows, rows.need(movements, e.originator_id, e["of_movement_id"]))

    @handles("FundAccount.Reversed")
    def reversed(self, e: Event, rows: Rows) -> None:
        original = rows.need(movements, e.originator_id, e["of_movement_id"])
        original["reversed_by"] = e["movement_id"]
        rows.changed(movements, original)
        m = self._movement(e, rows, "reversed", of_movement_id=e["of_movement_id"],
                           reason=e["reason"], counterparty_id=original["counterparty_id"])
        if original["kind"] == "received":  # back to the source, from that receipt first
            self._draw(rows, m, prefer=original["movement_id"])
        elif original["kind"] == "allocated":  # back up from the account below
            self._lot(e, rows, e.originator_id, e["movement_id"], "transfer",
                      from_account_id=original["counterparty_id"])
        else:
            self._return(e, rows, original)

    @handles("FundAccount.AllocationReversed")
    def allocation_reversed(self, e: Event, rows: Rows) -> None:
        original = rows.need(movements, e.originator_id, e["of_movement_id"])
        original["reversed_by"] = e["movement_id"]
        rows.changed(movements, original)
        m = self._movement(e, rows, "allocation_reversed", of_movement_id=e["of_movement_id"],
                           counterparty_id=original["counterparty_id"])
        self._draw(rows, m, prefer=original["movement_id"])

    # ------------------------------------------------------------------------------
    @staticmethod
    def _movement(e: Event, rows: Rows, kind: str, **fields: object) -> Row:
        return rows.insert(movements, {
            "account_id": e.originator_id, "movement_id": e["movement_id"], "kind": kind,
            "amount_fen": e["amount_fen"], "effective_date": e.day, "purpose": e["purpose"],
            "document_no": e["document_no"], "counterparty_id": None, "source": None,
            "payee_kind": None, "payee_id": None, "project_id": None, "of_movement_id": None,
            "reason": None, "returned_fen": 0, "reversed_by": None, "draws": 0,
            "position": e.position, **fields})

    @staticmethod
    def _lot(e: Event, rows: Rows, account_id: str, lot_id: str, origin: str, *, k: int = 0,
             amount: int | None = None, **fields: object) -> None:
        amount = e["amount_fen"] if amount is None else amount
        rows.insert(lots, {"account_id": account_id, "lot_id": lot_id, "effective_date": e.day,
                           "position": e.position, "k": k, "amount_fen": amount, "drawn_fen": 0,
                           "origin": origin, "movement_id": e["movement_id"],
                           "from_account_id": None, "parent_lot_id": None,
                           "parent_offset": None, **fields})
        account = rows.need(accounts, account_id)
        fifo.add(account["lots"], e.day, e.position, k, lot_id, amount)
        rows.changed(accounts, account)

    @staticmethod
    def _draw(rows: Rows, m: Row, prefer: str | None = None) -> None:
        account = rows.need(accounts, m["account_id"])
        offset = 0
        for k, (lot_id, drawn, n) in enumerate(fifo.take(account["lots"], m["amount_fen"],
                                                         prefer)):
            lot = rows.need(lots, m["account_id"], lot_id)
            lot["drawn_fen"] += n
            rows.changed(lots, lot)
            rows.insert(draws, {"account_id": m["account_id"], "movement_id": m["movement_id"],
                                "k": k, "lot_id": lot_id, "lot_offset": drawn,
                                "movement_offset": offset, "amount_fen": n, "returned_fen": 0})
            offset += n
            m["draws"] = k + 1
        rows.changed(accounts, account)

    def _return(self, e: Event, rows: Rows, payment: Row) -> None:
        """Money back from a payee: along the payment's draws, last drawn first."""
        payment["returned_fen"] += e["amount_fen"]
        rows.changed(movements, payment)
        left, j = e["amount_fen"], 0
        for k in reversed(range(payment["draws"])):
            if left == 0:
                break
            d = rows.need(draws, payment["account_id"], payment["movement_id"], k)
            n = min(d["amount_fen"] - d["returned_fen"], left)
            if n <= 0:
                continue
            start = d["lot_offset"] + d["amount_fen"] - d["returned_fen"] - n
            d["returned_fen"] += n
            rows.changed(draws, d)
            self._lot(e, rows, e.originator_id, f"{e['movement_id']}#{j}", "return", k=j,
                      amount=n, parent_lot_id=d["lot_id"], parent_offset=start)
            left -= n
            j += 1
        if left:
            raise fifo.Overdrawn(f"{left} fen returned beyond what payment "
                                 f"{payment['movement_id']} still has out")

