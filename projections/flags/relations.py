"""Relations kept up to date (优亲厚友): ``PAYEE_RELATIVE_OF_SIGNER``, ``SIGNERS_RELATED``,
``APPROVER_RELATED_TO_HOUSEHOLD``, ``BANK_ACCOUNT_SHARED`` (what counts, and why:
``inspection.rules.relations``).

Officials' ID hashes and declared relatives (``flag_officials``), households' members
(``flag_households.members``, and ``flag_members`` by hash), who signed each household's
identification (``id_signers``), the first household with each bank account
(``flag_bank_accounts``) and the preparer/approver pair of every signed step
(``flag_pairs``).  A relative may be declared before or after the steps it concerns: a
signature looks at the relatives declared so far, a declaration looks back at the pairs,
identifications and payments already seen (``relative_declared``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select

from inspection.rules.relations import (
    declared_relation,
    identification_signers,
    preparer_and_approver,
    relative_among,
    signers_wording,
)
from projections.events import Event
from projections.flags.base import FlagKeeping, payment_ref, subject_of
from projections.flags.tables import (
    bank_accounts,
    households,
    members,
    officials,
    pairs,
)
from projections.projection import Row, Rows, handles


class RelationFlags(FlagKeeping):
    """Officials, their relatives, and the steps they sign."""

    @handles("Official.Registered")
    def official_registered(self, e: Event, rows: Rows) -> None:
        rows.insert(officials, {"official_id": e.originator_id, "code": e["code"],
                                "id_hash": e["id_number_hash"], "relatives": {}})

    @handles("Official.RelativeDeclared")
    def relative_declared(self, e: Event, rows: Rows) -> None:
        """A relative declared after the steps it concerns: look back for them."""
        official = rows.need(officials, e.originator_id)
        official["relatives"] = {**official["relatives"], e["id_number_hash"]: e["relation"]}
        rows.changed(officials, official)
        rows.flush()
        conn, o, p = rows.conn, officials.c, pairs.c
        others = conn.execute(select(o.official_id).where(
            o.id_hash == e["id_number_hash"], o.official_id != e.originator_id)
            .order_by(o.official_id)).scalars().all()
        for other in others:
            signed = conn.execute(select(pairs).where(or_(
                and_(p.preparer_id == e.originator_id, p.approver_id == other),
                and_(p.preparer_id == other, p.approver_id == e.originator_id)))
                .order_by(p.log_position)).mappings().all()
            for pair in signed:
                self._signers_related(rows, e, dict(pair))
        household_ids = conn.execute(select(members.c.household_id).where(
            members.c.id_hash == e["id_number_hash"]).order_by(members.c.household_id)
        ).scalars().all()
        for household_id in household_ids:
            h = rows.need(households, household_id)
            self._approver_related(rows, e, h, e.originator_id)
            for entry in h["payments"]:
                self._payee_related(rows, e, h, entry, only=e.originator_id)

    # payees ----------------------------------------------------------------------------
    def _payee_related(self, rows: Rows, e: Event, h: Row, entry: dict,
                       only: str | None = None) -> None:
        """优亲厚友: a signer of the payment declared a member of the payee household."""
        for official_id in entry["signers"]:
            if only is not None and official_id != only:
                continue
            official = rows.get(officials, official_id)
            if official is None or not official["relatives"]:
                continue
            found = relative_among(official["relatives"], h["members"])
            if found is None:
                continue
            name, relation = found
            self._raise(rows, e, "PAYEE_RELATIVE_OF_SIGNER", entry["movement_id"],
                        path=h["region_path"], day=dt.date.fromisoformat(entry["paid_on"]),
                        evidence=[payment_ref(entry),
                                  {"kind": "household", "ref": h["household_id"]},
                                  {"kind": "official", "ref": official_id},
                                  {"kind": "event", "ref": entry["position"]}],
                        signers=entry["signers"],
                        detail={"account_id": entry["account_id"],
                                "amount_fen": entry["amount_fen"],
                                "purpose": entry["purpose"], "paid_on": entry["paid_on"],
                                "official_id": official_id, "official_code": official["code"],
                                "member": name, "relation": relation},
                        values={"member": name, "official": official["code"],
                                "relation": relation})
            return

    # households: identification and application ------------------------------------------
    def _applied_relations(self, e: Event, rows: Rows, h: Row) -> None:
        """A household's application: its members may be relatives of those who signed
        payments stored before it (one transaction); its bank account another's?"""
        for entry in h["payments"]:  # payments stored before the application (one transaction)
            self._payee_related(rows, e, h, entry)
        bank = e.get("bank_account_hash")
        if bank:
            first = rows.get(bank_accounts, bank)
            if first is None:
                rows.insert(bank_accounts, {
                    "bank_account_hash": bank, "household_id": e.originator_id,
                    "code": e["household_code"], "log_position": e.position})
            elif first["household_id"] != e.originator_id:
                self._raise(rows, e, "BANK_ACCOUNT_SHARED", e.originator_id,
                            path=e["region_path"],
                            evidence=[{"kind": "household", "ref": e.originator_id},
                                      {"kind": "household", "ref": first["household_id"]},
                                      {"kind": "event", "ref": first["log_position"]},
                                      {"kind": "event", "ref": e.position}],
                            signers=[s["official_id"] for s in e["signatures"]],
                            detail={"household_code": e["household_code"],
                                    "other_household_id": first["household_id"],
                                    "other_code": first["code"]},
                            values={"other_code": first["code"]})

    def _identification_step(self, e: Event, rows: Rows, h: Row) -> None:
        """Note who signed (but as witness) the identification; are they related to it?"""
        signed, day = h["id_signers"], e.day.isoformat()
        for official_id in identification_signers(e["signatures"]):
            signed.setdefault(official_id, []).append([e.position, day])
            self._approver_related(rows, e, h, official_id)

    def _approver_related(self, rows: Rows, e: Event, h: Row, official_id: str) -> None:
        official = rows.get(officials, official_id)
        if official is None or not official["relatives"] or official_id not in h["id_signers"]:
            return
        found = relative_among(official["relatives"], h["members"])
        if found is None:
            return
        name, relation = found
        steps = h["id_signers"][official_id]
        self._raise(rows, e, "APPROVER_RELATED_TO_HOUSEHOLD", h["household_id"],
                    path=h["region_path"], day=dt.date.fromisoformat(steps[-1][1]),
                    evidence=[{"kind": "household", "ref": h["household_id"]},
                              {"kind": "official", "ref": official_id},
                              *({"kind": "event", "ref": p} for p, _ in steps)],
                    signers=[official_id],
                    detail={"official_id": official_id, "official_code": official["code"],
                            "member": name, "relation": relation,
                            "signed": [p for p, _ in steps]},
                    values={"official": official["code"], "member": name,
                            "relation": relation})

    # preparer and approver of every signed step ------------------------------------------
    def _signers_pair(self, e: Event, rows: Rows) -> None:
        """Keep the step's preparer and approver; the same official, or related?"""
        kind, _ = subject_of(e)
        found = preparer_and_approver(e["signatures"])
        if found is None:
            return
        preparer, approver = found
        pair = rows.insert(pairs, {
            "preparer_id": preparer, "approver_id": approver, "log_position": e.position,
            "step": e.step, "originator_id": e.originator_id, "version": e.version,
            "movement_id": e.get("movement_id") if kind == "payment" else None,
            "effective_date": e.day,
            "signers": " ".join(s["official_id"] for s in e["signatures"])})
        if preparer == approver or self._declared(rows, preparer, approver) is not None:
            self._signers_related(rows, e, pair)

    @staticmethod
    def _declared(rows: Rows, preparer: str, approver: str) -> tuple[str, str] | None:
        """(who declared, relation) when one of the two declared the other a relative."""
        p, a = rows.get(officials, preparer), rows.get(officials, approver)
        if p is None or a is None:
            return None
        return declared_relation((preparer, p["id_hash"], p["relatives"]),
                                 (approver, a["id_hash"], a["relatives"]))

    def _signers_related(self, rows: Rows, e: Event, pair: Row) -> None:
        """Preparer and approver of one step the same official, or related (a pair row)."""
        preparer, approver = pair["preparer_id"], pair["approver_id"]
        how, declared_by, relation = "same", None, None
        if preparer != approver:
            declared = self._declared(rows, preparer, approver)
            if declared is None:
                return
            how, (declared_by, relation) = "related", declared
        codes = {oid: (rows.get(officials, oid) or {}).get("code", oid)
                 for oid in (preparer, approver)}
        evidence = [{"kind": "official", "ref": preparer}, {"kind": "event",
                                                            "ref": pair["log_position"]}]
        if preparer != approver:
            evidence.insert(1, {"kind": "official", "ref": approver})
        if pair["movement_id"]:
            evidence.insert(0, {"kind": "payment", "ref": pair["movement_id"],
                                "account_id": pair["originator_id"]})
            kind, subject = "payment", pair["movement_id"]
        else:
            kind, subject = "step", f"{pair['originator_id']}@{pair['version']}"
        self._raise(rows, e, "SIGNERS_RELATED", subject, subject_kind=kind,
                    path=self._path_of(rows, pair["step"], pair["originator_id"],
                                       pair["movement_id"]),
                    day=pair["effective_date"], evidence=evidence,
                    signers=pair["signers"].split(),
                    detail={"step": pair["step"], "preparer_id": preparer,
                            "approver_id": approver, "how": how, "declared_by": declared_by,
                            "relation": relation, "log_position": pair["log_position"]},
                    values={**signers_wording(how, relation),
                            "preparer": codes[preparer], "approver": codes[approver]})
