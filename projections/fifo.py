"""First in, first out (先进先出): which money an account spends when it pays or allocates.

The attribution rule, used by both ``balances`` (idle since) and ``money_trace``:

- Every amount that enters an account is a *lot* dated at its business date: a receipt
  (``Received``), an allocation from above (``AllocationReceived``), an allocation reversed
  back up (``Reversed`` of an ``Allocated``), or money that comes back from a payee
  (``Recovered``, ``Reversed`` of a ``Disbursed``, ``PaymentReturned``: 退回 by the bank).
- Money leaving an account (``Allocated``, ``Disbursed``, and the reversal of a receipt or
  of an allocation received) is taken from the open lots oldest first: by business date,
  then by position in the log.  A reversal takes first from the lot it reverses, then
  oldest first.
- Money that comes back is a *new* lot dated at the business date of its return; it is
  never poured back into the lots it was spent from, so "idle since" tells how long the
  returned money has been sitting, not when it first arrived.

A queue is a list of open lots ``[date ISO, log position, k, lot id, amount, drawn]``,
sorted; a lot leaves the queue when fully drawn.  The queue is plain JSON so it can be
stored in a row.
"""

from __future__ import annotations

import bisect
import datetime as dt

Lot = list  # [date_iso: str, position: int, k: int, lot_id: str, amount: int, drawn: int]


class Overdrawn(RuntimeError):
    """The account's lots hold less than it spends: the log breaks a domain invariant."""


def add(queue: list[Lot], day: dt.date, position: int, k: int, lot_id: str, amount: int) -> None:
    bisect.insort(queue, [day.isoformat(), position, k, lot_id, amount, 0])


def take(queue: list[Lot], amount: int, prefer: str | None = None) -> list[tuple[str, int, int]]:
    """Draw ``amount`` from the queue; returns ``(lot id, drawn before, taken)`` per lot."""
    order = list(range(len(queue)))
    if prefer is not None:
        order.sort(key=lambda i: queue[i][3] != prefer)
    out, left = [], amount
    for i in order:
        if left == 0:
            break
        lot = queue[i]
        n = min(lot[4] - lot[5], left)
        if n > 0:
            out.append((lot[3], lot[5], n))
            lot[5] += n
            left -= n
    if left:
        raise Overdrawn(f"{left} fen more than the account's open lots hold")
    queue[:] = [lot for lot in queue if lot[5] < lot[4]]
    return out


def oldest(queue: list[Lot]) -> dt.date | None:
    """The business date of the oldest unspent money (idle since), or None when empty."""
    return dt.date.fromisoformat(queue[0][0]) if queue else None


def total(queue: list[Lot]) -> int:
    return sum(lot[4] - lot[5] for lot in queue)
