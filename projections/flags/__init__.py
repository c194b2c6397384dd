"""Red flags (问题线索): every rule of ``inspection.rules`` kept up to date event by event.

What counts as a flag, and why, is ``inspection.rules`` (one module per family); this
package keeps the state the rules need and raises, or withdraws, the flags in log order:

- ``tables``: the SQL tables (``flags``, ``flag_signers``, the ``flag_*`` state);
- ``base``: raising and withdrawing, the log clock's row, regions of payments and steps;
- one mixin per family, as in ``inspection.rules``: ``payments`` (``PAY_REMOVED``,
  ``PAY_AFTER_EXIT``, ``PAY_UNREGISTERED``, ``PAY_DUPLICATE``, ``SPLIT_PAYMENT``),
  ``relations`` (``PAYEE_RELATIVE_OF_SIGNER``, ``SIGNERS_RELATED``,
  ``APPROVER_RELATED_TO_HOUSEHOLD``, ``BANK_ACCOUNT_SHARED``), ``funds``
  (``IDLE_FUNDS``), ``records`` (``BACKDATED``), ``exits`` (``EXIT_CHECKS_FAILED``,
  ``RELAPSE_SOON``), ``cases`` (``RECTIFICATION_OVERDUE``), ``batches``
  (``PAY_CARD_NOT_BENEFICIARY``, ``PAY_REPEATED_FAILURE``, ``PAY_ACCOUNT_CHANGED``);
- ``projection``: ``Flags``, the mixins combined, and which family each event goes to;
- ``queries``: ``list_flags``, ``get_flag``, ``flags_signed_by``, ``flag_counts``.

``flags`` holds one row per flag (``{rule_id}:{subject_id}``, so raising again is a no-op);
the ``flag_*`` tables hold what the rules need to look back at: households (register
transitions by business date, members, identification signers, the payments they received
— for duplicates and splits too —, annual reviews, exit), members and bank accounts by
hash, officials' ID hashes and declared relatives, the preparer/approver pair of every
signed step, movements, per-account FIFO lots (idle funds), payments to projects and
suppliers for splits, projects, cases and their rectification items, and the log clock.

Joins across aggregates look both ways: a payment and the removal (or exit, or
registration) of its payee, a step and a relative declared by its signer, may come in
either order — a writer saving several aggregates at once may store each one's events
together (``Zhuisu.batch`` keeps command order; others need not) — so each side
looks for the other.  A payment flag that depends on the payee's register status (paid
removed, after exit, unregistered) stands while the log so far puts the payee in that
status on the payment's date: a later event that shows otherwise (a registration stored
after the payment in the same transaction) *withdraws* it (``withdrawn_position``), a
reversal (冲正) withdraws a duplicate.  Flags are never deleted.

The **log clock** is the greatest business date seen so far (``inspection.rules``); when it
moves, idle funds and overdue rectification items are looked for, by index, only once
the clock passes a lower bound kept with it.  The thresholds are ``RuleSettings``; their
digest is part of ``version``, so changed thresholds rebuild the flags from position 0.
"""

from __future__ import annotations

from projections.flags.projection import CLOCK_ONLY, HOUSEHOLD_STEPS, TRANSITIONS, Flags
from projections.flags.queries import (
           MAX_LIMIT,
           flag_counts,
           flags_signed_by,
           get_flag,
           list_flags,
)
from projections.flags.tables import LEVELS

__all__ = ["CLOCK_ONLY", "HOUSEHOLD_STEPS", "LEVELS", "MAX_LIMIT", "TRANSITIONS", "Flags",
           "flag_counts", "flags_signed_by", "get_flag", "list_flags"]
