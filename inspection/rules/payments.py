"""Payment rules (资金发放): to whom, when, how often and in what pieces money is paid.

========================  ==============================
``PAY_REMOVED``           向已清退户发放资金
``PAY_AFTER_EXIT``        脱贫退出后发放不延续的政策资金
``PAY_UNREGISTERED``      向未在册农户发放资金
``PAY_DUPLICATE``         重复发放
``SPLIT_PAYMENT``         拆分支付规避审批
========================  ==============================

The first three read the payee's register status on the payment's business date
(``status_on``, ``payment_rule``); ``PAY_DUPLICATE`` compares the calendar period of
payments of one purpose (``period_key``, ``repeats``, ``duplicates_withdrawn``);
``SPLIT_PAYMENT`` looks for payments below the approval threshold that reach it together
(``completed_split``), and every such payment that comes later within the same window
joins that split (``split_joined``): one split, one flag, however many payments it takes
(five of 9,800 yuan against a 10,000-yuan limit are one split of five, not two of two and
a fifth left out).  Kept up to date by ``projections.flags.payments``, which holds each
household's register transitions and the payments it received, and raises or withdraws
the flags as the log shows more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from domain.money import PURPOSES

REGISTERED, EXITED, REMOVED = "registered", "exited", "removed"
"""Register transitions of a household by business date (as ``Household.status_on``)."""


def transition_on(transitions: Iterable[Sequence[Any]], day: dt.date) -> Sequence[Any] | None:
    """The ``[date ISO, status, log position]`` transition in force on ``day``: the last one
    dated on or before ``day`` (ties in log order); None: never on the register by then."""
    iso = day.isoformat()
    found = None
    for t in sorted(transitions, key=lambda t: (t[0], t[2])):
        if t[0] > iso:
            break
        found = t
    return found


def status_on(transitions: Iterable[Sequence[Any]], day: dt.date) -> str | None:
    """The register status on ``day`` from ``[date ISO, status, log position]`` transitions:
    the last one dated on or before ``day`` (ties in log order); None: never on the register."""
    found = transition_on(transitions, day)
    return None if found is None else found[1]


def payment_rule(status: str | None, purpose: str) -> str | None:
    """The rule a household payment breaks, given the payee's status on its business date."""
    if status is None:
        return "PAY_UNREGISTERED"
    if status == REMOVED:
        return "PAY_REMOVED"
    if status == EXITED:
        p = PURPOSES.get(purpose)
        return None if p is not None and p.allowed_after_exit else "PAY_AFTER_EXIT"
    return None


def purpose_title(code: str) -> str:
    """The purpose's Chinese title ('产业扶持到户补助'), or its code when unknown."""
    p = PURPOSES.get(code)
    return p.title if p is not None else code


def period_key(day: dt.date, period: str) -> str:
    """The calendar period of a business date: '2025-03', '2025-Q1' or '2025'."""
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return str(day.year)
    raise ValueError(f"unknown period {period!r}")


def _period_of(paid_on: str, period: str) -> str:
    return period_key(dt.date.fromisoformat(paid_on), period)


def repeats(earlier: Iterable[Sequence[Any]], new: Sequence[Any], period: str) -> list[int]:
    """The earlier payments to a household that payment ``new`` repeats (重复发放): same
    purpose, same ``period`` ('month', 'quarter', 'year') of the business date, not reversed.

    ``earlier``: ``[purpose, date ISO, reversed]`` of the payments seen before, in log order;
    ``new``: ``[purpose, date ISO]``.  Returns their indexes (none: not a duplicate).
    """
    purpose, key = new[0], _period_of(new[1], period)
    return [i for i, (p_purpose, paid_on, reversed_) in enumerate(earlier)
            if p_purpose == purpose and not reversed_ and _period_of(paid_on, period) == key]


def duplicates_withdrawn(payments: Iterable[Sequence[Any]], reversed_: Sequence[Any],
                         period: str) -> list[int]:
    """After a reversal (冲正): the duplicates of the reversed payment's purpose and period
    that no longer stand, being reversed themselves or repeating no standing payment.

    ``payments``: ``[purpose, date ISO, reversed, duplicate]`` of the household's payments
    in log order, the reversal already marked; ``reversed_``: ``[purpose, date ISO]`` of the
    reversed payment.  Returns the indexes of the payments whose ``PAY_DUPLICATE`` falls.
    """
    purpose, key = reversed_[0], _period_of(reversed_[1], period)
    standing, out = 0, []
    for i, (p_purpose, paid_on, is_reversed, duplicate) in enumerate(payments):
        if p_purpose != purpose or _period_of(paid_on, period) != key:
            continue
        if duplicate and (is_reversed or standing == 0):
            out.append(i)
        standing += not is_reversed
    return out


def completed_split(earlier: Iterable[Sequence[Any]], new: Sequence[Any], window_days: int,
                    threshold_fen: int) -> list[int] | None:
    """Does payment ``new`` complete a split (拆分支付)?  Returns the log positions of the
    split's payments (``new`` last), or None.

    ``earlier``: ``[date ISO, log position, amount]`` of the payments from the same account
    to the same payee for the same purpose seen before, each below the threshold, standing
    (not reversed) and not already part of a split.  ``new`` completes a split when some
    window of dates at most ``window_days`` apart holds it and earlier payments that
    together stay below the threshold and reach it with ``new``.  The earliest such window
    is chosen.
    """
    day = dt.date.fromisoformat(new[0])
    amount = new[2]
    if amount >= threshold_fen:
        return None
    near = sorted((dt.date.fromisoformat(d), pos, amt) for d, pos, amt in earlier
                  if abs((dt.date.fromisoformat(d) - day).days) <= window_days)
    starts = sorted({d for d, _, _ in near if d <= day} | {day})
    for start in starts:
        end = start + dt.timedelta(days=window_days)
        inside = [(d, pos, amt) for d, pos, amt in near if start <= d <= end]
        before = sum(amt for _, _, amt in inside)
        if inside and before < threshold_fen <= before + amount:
            return [pos for _, pos, _ in inside] + [new[1]]
    return None


def split_joined(splits: Iterable[Sequence[Any]], new_day: str,
                 window_days: int) -> Any | None:
    """The split (拆分支付) a new payment below the threshold joins, if any.

    ``splits``: ``[key, [date ISO, …]]`` of the splits already found among the payments
    from the same account to the same payee for the same purpose, in the order they were
    found.  The new payment, dated ``new_day``, joins the first split whose dates, with its
    own, still lie at most ``window_days`` apart: it is another piece of the same amount
    cut below the threshold.  Returns that split's key, or None.
    """
    day = dt.date.fromisoformat(new_day)
    for key, days in splits:
        dates = [dt.date.fromisoformat(d) for d in days] + [day]
        if (max(dates) - min(dates)).days <= window_days:
            return key
    return None
