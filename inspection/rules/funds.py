"""Fund rules (资金管理): money that stays in an account instead of reaching people.

===============  ==========
``IDLE_FUNDS``   资金滞留
===============  ==========

Money received by an account is a FIFO lot (``projections.fifo``) dated at its business
date; money still unspent more than ``idle_days`` by the log clock is idle (clock − lot
date > ``idle_days``).  One flag per account, raised once.  Kept up to date by
``projections.flags.funds``, which holds every account's open lots and the oldest
unspent date, and looks for idle accounts by index when the log clock moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any


def idle_limit(clock: dt.date, idle_days: int) -> dt.date:
    """Money received before this date is idle on ``clock``."""
    return clock - dt.timedelta(days=idle_days)


def is_idle(idle_since: dt.date | None, clock: dt.date | None, idle_days: int) -> bool:
    """Money received on ``idle_since`` and still unspent is idle more than ``idle_days``."""
    return idle_since is not None and clock is not None and (clock - idle_since).days > idle_days


def idle_fen(lots: Iterable[Sequence[Any]], clock: dt.date, idle_days: int) -> int:
    """How much is idle on ``clock``: the unspent fen of the lots (``[date ISO, unspent]``)
    received before ``idle_limit``."""
    limit = idle_limit(clock, idle_days).isoformat()
    return sum(unspent for day, unspent in lots if day < limit)
