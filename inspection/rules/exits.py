"""Exit rules (脱贫退出): exits that the evidence does not support.

=======================  ============================
``EXIT_CHECKS_FAILED``   脱贫退出不达标
``RELAPSE_SOON``         脱贫后即返贫（疑似数字脱贫）
=======================  ============================

``EXIT_CHECKS_FAILED``: the county approved an exit although the latest annual review
before the approval has income per capita at or below the line the exit proposal used
(``exit_line``, ``failing_review``).  ``RELAPSE_SOON``: a relapse (返贫) at most
``relapse_window_days`` after the latest exit approval (``relapsed_soon``).  Kept up to
date by ``projections.flags.exits``, which holds each household's exit proposal, annual
reviews and latest exit approval.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from domain.household import INCOME_LINES_FEN


def exit_line(year: int, proposed_line_fen: int | None) -> int | None:
    """The income line an exit is judged by: the one its proposal used, else the year's
    national line (None: unknown year)."""
    return proposed_line_fen or INCOME_LINES_FEN.get(year)


def failing_review(reviews: Iterable[Sequence[Any]], exit_year: int, approved_on: dt.date,
                   line_fen: int) -> list | None:
    """The latest annual review before an exit approval, if it fails the exit year's line.

    ``reviews``: ``[year, date ISO, log position, income per capita fen]``, those recorded
    before the approval.  Reviews of the exit year or later, dated on or before the
    approval, count; the latest (by date, then log position) is the evidence.
    """
    iso = approved_on.isoformat()
    candidates = [r for r in reviews if r[0] >= exit_year and r[1] <= iso]
    if not candidates:
        return None
    latest = max(candidates, key=lambda r: (r[1], r[2]))
    return list(latest) if latest[3] <= line_fen else None


def relapsed_soon(exited_on: dt.date, relapsed_on: dt.date, window_days: int) -> bool:
    """A relapse at most ``window_days`` after the exit approval (possible 数字脱贫)."""
    return (relapsed_on - exited_on).days <= window_days
