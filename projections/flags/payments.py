"""Payments kept up to date: ``PAY_REMOVED``, ``PAY_AFTER_EXIT``, ``PAY_UNREGISTERED``,
``PAY_DUPLICATE``, ``SPLIT_PAYMENT`` (what counts, and why: ``inspection.rules.payments``).

Every payment (``FundAccount.Disbursed``) is kept in its payee household's row
(``flag_households.payments``, in log order) or, for a project or supplier, in its split
group (account, payee and purpose: ``flag_split_groups``).  A payment and the register
transition (registration, exit, removal, relapse) of its payee may come in either order,
so both look: the payment when it comes, and every transition for the payments already
seen (``_payment_status``, called by ``projection.Flags.household_step``); a later event
that shows the payee otherwise withdraws the flag.  A split (拆分支付) is one flag, raised
by the payment that completes it and grown by every later one that joins it (``_split``).
A reversal (冲正: ``funds``) takes a payment out of splits and duplicates
(``_payment_reversed``), and so does a payment the bank returned (退回: ``batches``).  A
batch row's card is ``batches``'.  The money side of a payment
(its movement and lots) is ``funds``'; its signers' relatives, ``relations``'.
"""

from __future__ import annotations

import datetime as dt

from domain.money import yuan
from inspection.rules.payments import (
    completed_split,
    duplicates_withdrawn,
    payment_rule,
    period_key,
    purpose_title,
    repeats,
    split_joined,
    transition_on,
)
from projections.events import Event
from projections.flags.base import FlagKeeping, group_key, payment_ref
from projections.flags.tables import accounts, households, split_groups
from projections.projection import Row, Rows, handles


class PaymentFlags(FlagKeeping):
    """Payments to households, projects and suppliers."""

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows)
        self._lots(e, rows, -1)
        path = self._payee_path(rows, e.originator_id, e["payee_kind"], e["payee_id"],
                                e.get("project_id"))
        below = e["amount_fen"] < self.settings.approval_threshold_fen
        entry = {"account_id": e.originator_id, "movement_id": e["movement_id"],
                 "paid_on": e.day.isoformat(), "purpose": e["purpose"], "position": e.position,
                 "amount_fen": e["amount_fen"],
                 "signers": [s["official_id"] for s in e["signatures"]], "status_rule": None,
                 "reversed": False, "split": "open" if below else None, "duplicate": False}
        row = e.get("batch")
        if row:  # a row of a payment batch (支付令): the card it pays to (``batches``)
            entry.update(batch_id=row["batch_id"], row=row["row"],
                         bank=row.get("bank_account_hash"), holder=row.get("holder_id_hash"))
        if e["payee_kind"] != "household":
            if below:
                key = group_key(e.originator_id, e["payee_kind"], e["payee_id"], e["purpose"])
                group = rows.get(split_groups, key) or rows.insert(
                    split_groups, {"group_key": key, "payments": []})
                self._split(e, rows, group["payments"], entry, path)
                group["payments"].append(entry)
                rows.changed(split_groups, group)
            return
        h = self._household(rows, e["payee_id"])
        if below:
            self._split(e, rows, h["payments"], entry, path)
        self._duplicate(e, rows, h, entry, path)
        if row:
            self._batch_row(e, rows, h, entry, path)
        h["payments"].append(entry)
        rows.changed(households, h)
        self._payment_status(rows, e, h, entry)
        self._payee_related(rows, e, h, entry)

    def _payment_status(self, rows: Rows, e: Event, h: Row, entry: dict) -> None:
        """Raise or withdraw the payment's status flag as the payee's register now reads."""
        paid_on, old = entry["paid_on"], entry["status_rule"]
        since = transition_on(h["transitions"], dt.date.fromisoformat(paid_on))
        rule = payment_rule(since[1] if since is not None else None, entry["purpose"])
        if rule == old:
            return
        entry["status_rule"] = rule
        rows.changed(households, h)
        if old is not None:
            self._withdraw(rows, e, f"{old}:{entry['movement_id']}")
        if rule is None:
            return
        evidence = [payment_ref(entry), {"kind": "household", "ref": h["household_id"]},
                    {"kind": "event", "ref": entry["position"]}]
        if since is not None:
            evidence.append({"kind": "event", "ref": since[2]})
        elif h["applied_position"] is not None:
            evidence.append({"kind": "event", "ref": h["applied_position"]})
        self._raise(rows, e, rule, entry["movement_id"],
                    path=h["region_path"]
                    or rows.need(accounts, entry["account_id"])["region_path"],
                    evidence=evidence, signers=entry["signers"],
                    detail={"account_id": entry["account_id"], "household_id": h["household_id"],
                            "amount_fen": entry["amount_fen"], "purpose": entry["purpose"],
                            "paid_on": paid_on, "status": since[1] if since else None,
                            "status_since": since[0] if since else None},
                    values={"paid_on": paid_on, "purpose": entry["purpose"],
                            "purpose_title": purpose_title(entry["purpose"]),
                            "removed_on": since[0] if since else "",
                            "exited_on": since[0] if since else ""})

    def _duplicate(self, e: Event, rows: Rows, h: Row, entry: dict, path: dict) -> None:
        """Same household, purpose and period as a standing earlier payment (重复发放)."""
        payments, kind = h["payments"], self.settings.duplicate_period
        earlier = [payments[i] for i in repeats(
            [(p["purpose"], p["paid_on"], p["reversed"]) for p in payments],
            (entry["purpose"], entry["paid_on"]), kind)]
        if not earlier:
            return
        period = self._period(entry)
        entry["duplicate"] = True
        self._raise(rows, e, "PAY_DUPLICATE", entry["movement_id"], path=path,
                    evidence=[payment_ref(entry), payment_ref(earlier[0]),
                              {"kind": "household", "ref": h["household_id"]},
                              {"kind": "event", "ref": earlier[0]["position"]},
                              {"kind": "event", "ref": entry["position"]}],
                    signers=entry["signers"],
                    detail={"account_id": entry["account_id"], "amount_fen": entry["amount_fen"],
                            "purpose": entry["purpose"], "period": period,
                            "earlier": [{"movement_id": p["movement_id"],
                                         "account_id": p["account_id"],
                                         "log_position": p["position"]} for p in earlier]},
                    values={"purpose": entry["purpose"], "period": period,
                            "purpose_title": purpose_title(entry["purpose"])})

    def _period(self, entry: dict) -> str:
        return period_key(dt.date.fromisoformat(entry["paid_on"]),
                          self.settings.duplicate_period)

    def _split(self, e: Event, rows: Rows, earlier: list[dict], entry: dict,
               path: dict) -> None:
        """Payments below the approval threshold that together reach it (拆分支付).

        A payment's ``split`` is "open" (below the threshold, in no split yet), None (at or
        above it) or the movement id of the payment that completed its split: the split's
        flag's subject.  A new payment joins a split already flagged when it falls in its
        window (``split_joined``) and the flag grows; else it may complete a new split with
        the open ones (``completed_split``).
        """
        s = self.settings
        same = [p for p in earlier if p["account_id"] == entry["account_id"]
                and p["purpose"] == entry["purpose"]]
        splits: dict[str, list[dict]] = {}
        for p in same:
            if p["split"] not in (None, "open"):
                splits.setdefault(p["split"], []).append(p)
        joined = split_joined([(key, [p["paid_on"] for p in parts])
                               for key, parts in splits.items()],
                              entry["paid_on"], s.split_window_days)
        if joined is not None:
            entry["split"] = joined
            self._split_flag(e, rows, joined, [*splits[joined], entry], path)
            return
        open_ = [p for p in same if p["split"] == "open" and not p["reversed"]]
        split = completed_split([(p["paid_on"], p["position"], p["amount_fen"]) for p in open_],
                                (entry["paid_on"], entry["position"], entry["amount_fen"]),
                                s.split_window_days, s.approval_threshold_fen)
        if split is None:
            return
        parts = [p for p in open_ if p["position"] in split] + [entry]
        for p in parts:
            p["split"] = entry["movement_id"]
        self._split_flag(e, rows, entry["movement_id"], parts, path)

    def _split_flag(self, e: Event, rows: Rows, key: str, parts: list[dict],
                    path: dict) -> None:
        """Raise the split's flag, or grow it: its evidence and detail list every payment
        of the split (in log order), its signers every one who signed one of them."""
        s = self.settings
        first = next(p for p in parts if p["movement_id"] == key)
        total = sum(p["amount_fen"] for p in parts)
        self._raise(rows, e, "SPLIT_PAYMENT", key, path=path, grow=True,
                    evidence=[*(payment_ref(p) for p in parts),
                              *({"kind": "event", "ref": p["position"]} for p in parts)],
                    signers=[o for p in parts for o in p["signers"]],
                    detail={"account_id": first["account_id"], "payee_kind": e["payee_kind"],
                            "payee_id": e["payee_id"], "purpose": first["purpose"],
                            "total_fen": total, "threshold_fen": s.approval_threshold_fen,
                            "window_days": s.split_window_days,
                            "payments": [{"movement_id": p["movement_id"],
                                          "effective_date": p["paid_on"],
                                          "amount_fen": p["amount_fen"],
                                          "log_position": p["position"]} for p in parts]},
                    values={"count": len(parts), "total": yuan(total),
                            "threshold": yuan(s.approval_threshold_fen)})

    def _payment_reversed(self, e: Event, rows: Rows, original: Row) -> None:
        """A reversed payment (冲正) no longer counts for splits, nor as a duplicate or the
        payment another one duplicates."""
        if original["payee_kind"] == "household":
            table, row = households, rows.get(households, original["payee_id"])
        else:
            table, row = split_groups, rows.get(split_groups, group_key(
                original["account_id"], original["payee_kind"], original["payee_id"],
                original["purpose"]))
        if row is None:
            return
        payments = row["payments"]
        reversed_ = next((p for p in payments if p["movement_id"] == original["movement_id"]
                          and p["account_id"] == original["account_id"]), None)
        if reversed_ is None:
            return
        reversed_["reversed"] = True
        rows.changed(table, row)
        if table is not households:
            return
        for i in duplicates_withdrawn(
                [(p["purpose"], p["paid_on"], p["reversed"], p["duplicate"]) for p in payments],
                (reversed_["purpose"], reversed_["paid_on"]), self.settings.duplicate_period):
            p = payments[i]
            p["duplicate"] = False
            self._withdraw(rows, e, f"PAY_DUPLICATE:{p['movement_id']}")
