"""Payment batches kept up to date: ``PAY_CARD_NOT_BENEFICIARY``, ``PAY_REPEATED_FAILURE``,
``PAY_ACCOUNT_CHANGED`` (what counts, and why: ``inspection.rules.batches``).

A batch row (``FundAccount.Disbursed`` with a ``batch``) is kept in its payee household's
``payments`` like any payment (``payments``), with the card it pays to (``bank``,
``holder``) and its row (``row``, ``batch_id``).  Each payee's registered bank account and
its payments the bank returned are ``flag_payees``; each bank account's returned payments
``flag_bank_failures``.  A card holder is judged when the row comes, or — a payment seen
before its payee's application (stored together) — when the application comes
(``_batch_applied``).  A payment the bank returned (退回, ``PaymentReturned``) is money back
on the account (``funds``' lots) and no longer counts as paid: it is taken out of splits
and duplicates as a reversal is (``payments._payment_reversed``), so its re-issue is no
duplicate.  The signers answerable are the batch's (those of the payments concerned).
"""

from __future__ import annotations

import datetime as dt

from inspection.rules.batches import (
    FAILURES,
    account_changed,
    account_reference,
    card_not_beneficiary,
    repeated_failures,
)
from projections.events import Event
from projections.flags.base import FlagKeeping, payment_ref
from projections.flags.tables import accounts, bank_failures, movements, payees
from projections.projection import Row, Rows, handles

BASIS_ZH = {"previous_payment": "该户{day}上一笔发放的账户", "registered": "该户建档登记的账户"}
BASIS_EN = {"previous_payment": "the account of the household's previous payment on {day}",
            "registered": "the account the household registered with"}


class BatchFlags(FlagKeeping):
    """Batch rows' cards, bank returns, and account changes."""

    def _payee(self, rows: Rows, household_id: str) -> Row:
        p = rows.get(payees, household_id)
        if p is None:
            p = rows.insert(payees, {"household_id": household_id, "registered_bank": None,
                                     "failures": []})
        return p

    # a row of a batch --------------------------------------------------------------------
    def _batch_row(self, e: Event, rows: Rows, h: Row, entry: dict, path: dict) -> None:
        """Called by ``payments.disbursed`` for a batch row to a household, before the
        row joins ``h["payments"]``."""
        if h["code"] is not None:
            self._card_holder(e, rows, h, entry)
        self._account_change(e, rows, h, entry, path)

    def _card_holder(self, e: Event, rows: Rows, h: Row, entry: dict) -> None:
        if not card_not_beneficiary(entry.get("holder"), (m[0] for m in h["members"])):
            return
        self._raise(rows, e, "PAY_CARD_NOT_BENEFICIARY", entry["movement_id"],
                    path=h["region_path"],
                    evidence=[payment_ref(entry), {"kind": "household", "ref": h["household_id"]},
                              {"kind": "event", "ref": entry["position"]}],
                    signers=entry["signers"],
                    detail={"account_id": entry["account_id"], "household_id": h["household_id"],
                            "batch_id": entry.get("batch_id"), "row": entry.get("row"),
                            "amount_fen": entry["amount_fen"], "paid_on": entry["paid_on"],
                            "holder_id_hash": entry["holder"],
                            "bank_account_hash": entry.get("bank")},
                    values={"row": (entry.get("row") or 0) + 1})

    def _account_change(self, e: Event, rows: Rows, h: Row, entry: dict, path: dict) -> None:
        if not entry.get("bank"):
            return
        p = rows.get(payees, h["household_id"])
        earlier = [[x["paid_on"], x["position"], x.get("bank")] for x in h["payments"]]
        paid_on = dt.date.fromisoformat(entry["paid_on"])
        ref = account_reference(earlier, p["registered_bank"] if p else None, paid_on,
                                self.settings.account_change_days)
        if not account_changed(entry["bank"], ref):
            return
        basis, before, day = ref  # type: ignore[misc]
        previous = next((x for x in reversed(h["payments"]) if x["paid_on"] == day
                         and x.get("bank") == before), None) if day else None
        evidence = [payment_ref(entry), {"kind": "household", "ref": h["household_id"]},
                    {"kind": "event", "ref": entry["position"]}]
        if previous is not None:
            evidence += [payment_ref(previous), {"kind": "event", "ref": previous["position"]}]
        elif h["applied_position"] is not None:
            evidence.append({"kind": "event", "ref": h["applied_position"]})
        self._raise(rows, e, "PAY_ACCOUNT_CHANGED", entry["movement_id"], path=path,
                    evidence=evidence, signers=entry["signers"],
                    detail={"account_id": entry["account_id"], "household_id": h["household_id"],
                            "batch_id": entry.get("batch_id"), "row": entry.get("row"),
                            "paid_on": entry["paid_on"], "amount_fen": entry["amount_fen"],
                            "bank_account_hash": entry["bank"], "basis": basis,
                            "previous_bank_account_hash": before, "previous_paid_on": day,
                            "previous_movement_id": previous["movement_id"] if previous else None,
                            "window_days": self.settings.account_change_days},
                    values={"paid_on": entry["paid_on"],
                            "basis": BASIS_ZH[basis].format(day=day),
                            "basis_en": BASIS_EN[basis].format(day=day)})

    def _batch_applied(self, e: Event, rows: Rows, h: Row) -> None:
        """A household applies (or is imported): its registered account; payments to it
        seen before (stored together) are judged now."""
        p = self._payee(rows, e.originator_id)
        p["registered_bank"] = e.get("bank_account_hash")
        rows.changed(payees, p)
        for entry in h["payments"]:
            if entry.get("holder"):
                self._card_holder(e, rows, h, entry)

    # 退回: the bank could not credit a payment ----------------------------------------------
    @handles("FundAccount.PaymentReturned")
    def payment_returned(self, e: Event, rows: Rows) -> None:
        original = rows.need(movements, e.originator_id, e["of_movement_id"])
        self._movement(e, rows)
        self._lots(e, rows, +1)  # the money is back on the account
        self._payment_reversed(e, rows, original)  # no longer paid: no split, no duplicate
        if original["payee_kind"] != "household":
            return
        h = self._household(rows, original["payee_id"])
        entry = next((x for x in h["payments"] if x["movement_id"] == e["of_movement_id"]
                      and x["account_id"] == e.originator_id), None)
        bank = entry.get("bank") if entry else None
        failure = {"household_id": h["household_id"], "account_id": e.originator_id,
                   "movement_id": e["of_movement_id"], "returned_id": e["movement_id"],
                   "returned_on": e.day.isoformat(), "position": e.position,
                   "paid_position": entry["position"] if entry else None,
                   "bank": bank, "reason": e["reason"],
                   "signers": entry["signers"] if entry else []}
        p = self._payee(rows, h["household_id"])
        p["failures"] = [*p["failures"], failure]
        rows.changed(payees, p)
        by_bank: list[dict] = []
        if bank:
            b = rows.get(bank_failures, bank) or rows.insert(
                bank_failures, {"bank_account_hash": bank, "failures": []})
            b["failures"] = [*b["failures"], failure]
            rows.changed(bank_failures, b)
            if len({f["household_id"] for f in b["failures"]}) > 1:
                by_bank = b["failures"]
        mine = p["failures"]
        if not (repeated_failures(len(mine)) or repeated_failures(len(by_bank))):
            return
        failed = {(f["account_id"], f["movement_id"]): f for f in [*mine, *by_bank]}
        ordered = sorted(failed.values(), key=lambda f: f["position"])
        evidence = [{"kind": "household", "ref": h["household_id"]}]
        for f in ordered:
            evidence.append({"kind": "payment", "ref": f["movement_id"],
                             "account_id": f["account_id"]})
            evidence.append({"kind": "event", "ref": f["position"]})
        if repeated_failures(len(mine)):
            how, how_en, count = "该户发放", "the household's payments", len(mine)
        else:
            how, how_en, count = "同一收款账户（多户）", "payments to one bank account", len(by_bank)
        self._raise(rows, e, "PAY_REPEATED_FAILURE", h["household_id"],
                    path=h["region_path"]
                    or rows.need(accounts, e.originator_id)["region_path"],
                    grow=True, evidence=evidence,
                    signers=[o for f in ordered for o in f["signers"]],
                    detail={"household_id": h["household_id"], "threshold": FAILURES,
                            "household_failures": [_plain(f) for f in mine],
                            "bank_account_failures": [_plain(f) for f in by_bank]},
                    values={"how": how, "how_en": how_en, "count": count,
                            "reason": e["reason"]})


def _plain(f: dict) -> dict:
    return {k: f[k] for k in ("household_id", "account_id", "movement_id", "returned_id",
                              "returned_on", "bank", "reason")}
