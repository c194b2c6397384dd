"""Case rules (整改): rectification that an inspection case ordered and that is late.

==========================  ========
``RECTIFICATION_OVERDUE``   整改逾期
==========================  ========

A rectification item still open when the log clock passes its deadline
(``overdue_on``), or completed on a date after it (``completed_late``); a completion dated
on or before the deadline, coming later in the log, withdraws the flag.  Kept up to date
by ``projections.flags.cases``, which holds every open item and looks for overdue ones by
index when the log clock moves.
"""

from __future__ import annotations

import datetime as dt


def overdue_on(deadline: dt.date, clock: dt.date | None) -> bool:
    """An item still open is overdue once the log clock is past its deadline."""
    return clock is not None and deadline < clock


def completed_late(deadline: dt.date, completed_on: dt.date) -> bool:
    """An item completed on a date after its deadline."""
    return completed_on > deadline


def overdue_state(completed_on: dt.date | None) -> dict[str, str]:
    """Where the overdue item stands, for the explanation: completed late, or not yet."""
    done = completed_on.isoformat() if completed_on else None
    return {"state": f"{done}才完成" if done else "尚未完成",
            "state_en": f"completed {done}" if done else "not completed"}
