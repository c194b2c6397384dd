"""Payment batch rules (批量发放, 支付令 + 分户清单 and the bank's 回盘): whose card, how often
it fails, when it changed.

============================  ==================================
``PAY_CARD_NOT_BENEFICIARY``  持卡人非受益户成员（冒领、代领）
``PAY_REPEATED_FAILURE``      同一户或同一账户多次发放失败（退回）
``PAY_ACCOUNT_CHANGED``       发放前短期内变更收款账户
============================  ==================================

A row of a payment batch (``domain.batch``) names the card it pays to by hash: the bank
account (``bank_account_hash``) and, where the 分户清单 gives it, the card holder's ID
number (``holder_id_hash``), hashed as members' ID numbers are.

- ``PAY_CARD_NOT_BENEFICIARY``: the holder's hash is given and is not the hash of any
  member of the payee household (``card_not_beneficiary``).
- ``PAY_REPEATED_FAILURE``: the bank returned (退回) ``FAILURES`` or more payments of one
  household, or to one bank account whichever households they were for
  (``repeated_failures``): a closed or frozen card paid again and again, or a card
  that is not the household's.
- ``PAY_ACCOUNT_CHANGED``: the account a payment goes to differs from the one the
  household was known by (``account_reference``, ``account_changed``): the account of its
  latest earlier payment that named one, if that payment is at most
  ``account_change_days`` (default 30) before this one; otherwise the account the
  household registered with (``Household.Applied``'s ``bank_account_hash``), if any.

Payments signed one by one name no card, so only batch rows are judged.  Kept up to date
by ``projections.flags.batches``; the signers answerable are the batch's (each row
carries them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

FAILURES = 2  # returned this many times or more: PAY_REPEATED_FAILURE


def card_not_beneficiary(holder_id_hash: str | None, member_hashes: Iterable[str]) -> bool:
    """The card holder is named and is none of the household's members."""
    return bool(holder_id_hash) and holder_id_hash not in set(member_hashes)


def repeated_failures(count: int) -> bool:
    return count >= FAILURES


def account_reference(earlier: Iterable[Sequence[Any]], registered: str | None,
                      paid_on: dt.date, window_days: int) -> tuple[str, str, str | None] | None:
    """The account a payment on ``paid_on`` is compared with: ``(basis, hash, date ISO)``.

    ``earlier``: ``[date ISO, log position, bank hash]`` of the household's earlier
    payments (those naming no account are skipped).  The latest of them (by date, then log
    order) if it is at most ``window_days`` before ``paid_on`` (basis ``previous_payment``);
    else the registered account (basis ``registered``); None when neither is known.
    """
    named = sorted((p for p in earlier if p[2]), key=lambda p: (p[0], p[1]))
    named = [p for p in named if p[0] <= paid_on.isoformat()]
    if named:
        last = named[-1]
        if (paid_on - dt.date.fromisoformat(last[0])).days <= window_days:
            return "previous_payment", last[2], last[0]
    if registered:
        return "registered", registered, None
    return None


def account_changed(bank_account_hash: str | None,
                    reference: tuple[str, str, str | None] | None) -> bool:
    """The payment names an account, and it differs from the reference account."""
    return bool(bank_account_hash) and reference is not None and reference[1] != bank_account_hash
