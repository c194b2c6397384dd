"""Funds kept up to date: ``IDLE_FUNDS`` (what counts, and why: ``inspection.rules.funds``).

Every account's movements (``flag_movements``) and open FIFO lots (``flag_accounts.lots``,
as ``projections.fifo``) with the date of its oldest unspent money (``idle_since``).  An
account is looked at when money moves (``_lots``) and, when the log clock moves, found by
index once the clock passes ``flag_clock.idle_bound`` — no later than the oldest
``idle_since`` of the accounts not yet flagged (``_idle_tick``, called by
``projection.Flags._tick``).  A reversed payment goes to ``payments`` too.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import false, func, select

from domain.money import yuan
from inspection.rules.funds import idle_fen, idle_limit, is_idle
from projections import fifo
from projections.events import Event
from projections.flags.base import FlagKeeping
from projections.flags.tables import accounts, clock, movements
from projections.projection import Row, Rows, handles


class FundFlags(FlagKeeping):
    """Accounts, their movements and lots."""

    @handles("FundAccount.Opened")
    def account_opened(self, e: Event, rows: Rows) -> None:
        rows.insert(accounts, {"account_id": e.originator_id, "region_path": e["region_path"],
                               "lots": [], "idle_since": None, "idle_flagged": False})

    @handles("FundAccount.Received", "FundAccount.AllocationReceived", "FundAccount.Recovered")
    def money_in(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows)
        self._lots(e, rows, +1)

    @handles("FundAccount.Allocated", "FundAccount.AllocationReversed")
    def money_out(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows)
        self._lots(e, rows, -1, prefer=e.get("of_movement_id"))

    @handles("FundAccount.Reversed")
    def reversed(self, e: Event, rows: Rows) -> None:
        original = rows.need(movements, e.originator_id, e["of_movement_id"])
        self._movement(e, rows)
        if original["kind"] == "received":  # the receipt's money goes back where it came from
            self._lots(e, rows, -1, prefer=e["of_movement_id"])
            return
        self._lots(e, rows, +1)  # an allocation comes back up, a payment back from its payee
        if original["kind"] == "disbursed":
            self._payment_reversed(e, rows, original)

    def _movement(self, e: Event, rows: Rows) -> None:
        rows.insert(movements, {"account_id": e.originator_id, "movement_id": e["movement_id"],
                                "kind": e.step.partition(".")[2].lower(),
                                "payee_kind": e.get("payee_kind"), "payee_id": e.get("payee_id"),
                                "project_id": e.get("project_id"), "purpose": e["purpose"],
                                "effective_date": e.day})

    def _lots(self, e: Event, rows: Rows, sign: int, prefer: str | None = None) -> None:
        """Money in (a new lot) or out (oldest lots first), then: is the account idle?"""
        account = rows.need(accounts, e.originator_id)
        c = self._clock(rows)
        if sign > 0:
            fifo.add(account["lots"], e.day, e.position, 0, e["movement_id"], e["amount_fen"])
            if not account["idle_flagged"] and (c["idle_bound"] is None or e.day < c["idle_bound"]):
                c["idle_bound"] = e.day
                rows.changed(clock, c)
        else:
            fifo.take(account["lots"], e["amount_fen"], prefer)
        account["idle_since"] = fifo.oldest(account["lots"])
        rows.changed(accounts, account)
        if not account["idle_flagged"] and is_idle(account["idle_since"], c["day"],
                                                   self.settings.idle_days):
            self._idle(rows, e, account, c["day"])

    def _idle_tick(self, e: Event, rows: Rows, c: Row, day: dt.date) -> None:
        """The log clock moved to ``day``: the accounts idle since before ``idle_limit``."""
        limit = idle_limit(day, self.settings.idle_days)
        if c["idle_bound"] is not None and c["idle_bound"] < limit:
            a = accounts.c
            rows.flush()
            for account_id in rows.conn.execute(
                    select(a.account_id).where(a.idle_flagged == false(), a.idle_since < limit)
                    .order_by(a.account_id)).scalars().all():
                self._idle(rows, e, rows.need(accounts, account_id), day)
            rows.flush()
            c["idle_bound"] = rows.conn.execute(
                select(func.min(a.idle_since)).where(a.idle_flagged == false())).scalar()

    def _idle(self, rows: Rows, e: Event, account: Row, day: dt.date) -> None:
        oldest = account["lots"][0]
        idle = idle_fen([(lot[0], lot[4] - lot[5]) for lot in account["lots"]], day,
                        self.settings.idle_days)
        since = account["idle_since"]
        days = (day - since).days
        account["idle_flagged"] = True
        rows.changed(accounts, account)
        self._raise(rows, e, "IDLE_FUNDS", account["account_id"], path=account["region_path"],
                    evidence=[{"kind": "account", "ref": account["account_id"]},
                              {"kind": "event", "ref": oldest[1]}],
                    signers=[],
                    detail={"idle_since": since.isoformat(), "days": days, "clock": day.isoformat(),
                            "idle_fen": idle, "oldest_lot": oldest[3],
                            "idle_days": self.settings.idle_days},
                    values={"amount": yuan(idle), "idle_since": since.isoformat(), "days": days})
