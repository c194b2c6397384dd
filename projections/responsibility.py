"""Responsibility (谁签字谁负责, 谁签字谁追回): every signature, and what became of what was signed.

``resp_signatures`` holds one row per signature on any signed step: who (official, key),
in which role (经办 preparer, 审核 reviewer, 审批 approver, 见证 witness), under which
position (职务) at which region and with which responsibility (第一/直接/领导/经办), on
which business date, about which household, account movement or project, for how much.
``resp_official_days`` counts them per official, day, step and role.

``resp_liabilities`` is the liability ledger: when something signed turns out wrong, one
row per signature that answers for it — ``household_removed`` (each step of a household
later removed, 清退), ``exit_relapsed`` (each step of an exit the household relapsed from,
返贫), ``payment_recovered`` (追回), ``payment_reversed`` / ``allocation_reversed`` /
``receipt_reversed`` (冲正), and ``paid_removed_household`` (each payment to a household
later removed: money to recover from its signers, 谁签字谁追回).  The fate of households
(``resp_households``: removed, relapsed) and movements (``resp_movements``: signers,
recovered, reversed) is kept beside; officials and their keys (rotated, revoked) give
names and key state.

A payment batch (支付令, ``FundAccount.BatchOrdered``), a bank return (回盘,
``FundAccount.ReturnsRecorded``) and a roster import (花名册, ``Roster.Imported``) are signed
steps like any other: their signatures are recorded against the account (the batch's
total, the return's returned amount) or, for an import, the roster itself.  Each row of a
batch is a ``Disbursed`` carrying the batch's signatures, so each payment's chain shows the
batch's signers.  A payment the bank returned (退回, ``PaymentReturned``) counts as money
back in its movement's ``recovered_fen`` (what came back of it), with no liability: the
bank could not credit it, nobody signed anything wrong.

A payment and the removal of its payee are events of two aggregates: stored in one
transaction they may come in either order, so each side looks for the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)

from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.tracking import metadata

signatures = Table(
    "resp_signatures", metadata,
    Column("log_position", BigInteger, primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("originator_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("step", String(48), nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("official_id", String(36), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("post", String(48), nullable=False),  # the position (职务) signed under
    Column("post_region", String(32), nullable=False),
    Column("responsibility", String(16), nullable=False),
    Column("household_id", String(36)),  # household step, or payment to a household
    Column("account_id", String(36)),
    Column("movement_id", String(36)),
    Column("project_id", String(36)),
    Column("amount_fen", BigInteger),
    Column("purpose", String(48)),
    sqlite_with_rowid=False,
)
Index("resp_signatures_official", signatures.c.official_id, signatures.c.step,
      signatures.c.effective_date)
Index("resp_signatures_subject", signatures.c.originator_id, signatures.c.version,
      info={"handlers_need": True})

official_days = Table(
    "resp_official_days", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("effective_date", Date, primary_key=True),
    Column("step", String(48), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
)

liabilities = Table(
    "resp_liabilities", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("signed_position", BigInteger, primary_key=True),  # the official's signed step
    Column("event_position", BigInteger, primary_key=True),  # what later happened to it
    Column("step", String(48), nullable=False),
    Column("role", String(16), nullable=False),
    Column("signed_on", Date, nullable=False),
    Column("happened_on", Date, nullable=False),
    Column("household_id", String(36)),
    Column("account_id", String(36)),
    Column("movement_id", String(36)),
    Column("amount_fen", BigInteger),
    Column("detail", Text),  # the reason of a removal, recovery or reversal; a relapse's cause
)

officials = Table(
    "resp_officials", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("region_code", String(32), nullable=False),
)

keys = Table(
    "resp_keys", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date),  # exclusive: rotated or revoked from this date
    Column("revoked_on", Date),
    Column("revocation_reason", Text),
)

households = Table(
    "resp_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("village_code", String(32), nullable=False),
    Column("relapses", JSON, nullable=False),  # [[date, cause, log position], …]
    Column("relapse_count", Integer, nullable=False),
    Column("removed_on", Date),
    Column("removal_reason", Text),
    Column("removed_position", BigInteger),
)

movements = Table(
    "resp_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("purpose", String(48), nullable=False),
    Column("payee_kind", String(16)),
    Column("payee_id", String(64)),
    Column("recovered_fen", BigInteger, nullable=False),
    Column("reversed_by", String(36)),
    Column("log_position", BigInteger, nullable=False),
    Column("signers", JSON, nullable=False),  # [[official, role], …]
)
Index("resp_movements_payee", movements.c.payee_id, info={"handlers_need": True})

MONEY_KINDS = {"FundAccount.Received": "received", "FundAccount.Allocated": "allocated",
               "FundAccount.Disbursed": "disbursed", "FundAccount.Recovered": "recovered",
               "FundAccount.Reversed": "reversed", "FundAccount.PaymentReturned": "returned"}
MANIFESTS = ("FundAccount.BatchOrdered", "FundAccount.ReturnsRecorded", "Roster.Imported")
SIGNED_STEPS = (
    "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
    "Household.NoticePosted", "Household.ObjectionRaised", "Household.ObjectionResolved",
    "Household.ReviewedByTownship", "Household.ApprovedByCounty", "Household.HelperAssigned",
    "Household.AnnualReviewRecorded", "Household.ExitProposed", "Household.ExitAppraised",
    "Household.ExitConfirmedByHousehold", "Household.ExitVerifiedByTownship",
    "Household.ExitApprovedByCounty", "Household.RemovedFromRegister", "Household.Relapsed",
    "Project.Approved", "Project.BeneficiaryAdded", "Project.AcceptedOnCompletion",
    *MONEY_KINDS, *MANIFESTS,
)
EXIT_STEPS = ("Household.ExitProposed", "Household.ExitAppraised",
              "Household.ExitConfirmedByHousehold", "Household.ExitVerifiedByTownship",
              "Household.ExitApprovedByCounty")
REVERSED = {"disbursed": "payment_reversed", "allocated": "allocation_reversed",
            "received": "receipt_reversed"}
STEPS_OF = {kind: step for step, kind in MONEY_KINDS.items()}
FATES = ("Household.Relapsed", "Household.RemovedFromRegister")


class Responsibility(Projection):
    name = "responsibility"
    version = 2  # 2: batches, bank returns and roster imports
    tables = (signatures, official_days, liabilities, officials, keys, households, movements)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(households, {(e.originator_id,) for e in events if e.step in FATES}
                  | {(e["payee_id"],) for e in events if e.get("payee_kind") == "household"
                     and "payee_id" in e.data})
        rows.load(movements, [(e.originator_id, e["of_movement_id"]) for e in events
                              if "of_movement_id" in e.data])
        rows.load(official_days, [(s["official_id"], e.day, e.step, s["role"]) for e in events
                                  for s in e.get("signatures") or ()])

    @handles(*SIGNED_STEPS)
    def signed(self, e: Event, rows: Rows) -> None:
        subject: dict[str, object] = {"household_id": None, "account_id": None,
                                      "movement_id": None, "project_id": None,
                                      "amount_fen": None, "purpose": None}
        aggregate = e.step.partition(".")[0]
        if aggregate == "Household":
            subject["household_id"] = e.originator_id
        elif aggregate == "Project":
            subject.update(project_id=e.originator_id, amount_fen=e.get("budget_fen"),
                           purpose=e.get("purpose_code"), household_id=e.get("household_id"))
        elif e.step in MANIFESTS:
            if aggregate == "FundAccount":
                subject.update(account_id=e.originator_id, purpose=e.get("purpose"),
                               amount_fen=e.get("total_fen", e.get("returned_fen")))
        else:
            subject.update(account_id=e.originator_id, movement_id=e["movement_id"],
                           amount_fen=e["amount_fen"], purpose=e["purpose"])
            if e.get("payee_kind") == "household":
                subject["household_id"] = e["payee_id"]
            elif e.get("payee_kind") == "project":
                subject["project_id"] = e["payee_id"]
            elif e.get("project_id"):
                subject["project_id"] = e["project_id"]
        for s in e["signatures"]:
            rows.insert(signatures, {
                "log_position": e.position, "role": s["role"], "originator_id": e.originator_id,
                "version": e.version, "step": e.step, "effective_date": e.day,
                "official_id": s["official_id"], "key_id": s["key_id"], "post": s["position"],
                "post_region": s["position_region"], "responsibility": s["responsibility"],
                **subject})
            self._count(e, rows, s["official_id"], s["role"], subject["amount_fen"] or 0)
        if aggregate == "Household":
            self._household(e, rows)
        elif e.step in MONEY_KINDS:
            self._money(e, rows)

    @staticmethod
    def _count(e: Event, rows: Rows, official_id: str, role: str, amount: int) -> None:
        day = rows.get(official_days, official_id, e.day, e.step, role)
        if day is None:
            rows.insert(official_days, {"official_id": official_id, "effective_date": e.day,
                                        "step": e.step, "role": role, "count": 1,
                                        "amount_fen": amount})
        else:
            day["count"] += 1
            day["amount_fen"] += amount
            rows.changed(official_days, day)

    # what became of a household ------------------------------------------------------
    def _household(self, e: Event, rows: Rows) -> None:
        if e.step == "Household.Applied":
            rows.insert(households, {
                "household_id": e.originator_id, "code": e["household_code"],
                "village_code": e["village_code"], "relapses": [], "relapse_count": 0,
                "removed_on": None, "removal_reason": None, "removed_position": None})
            return
        if e.step not in FATES:
            return
        h = rows.need(households, e.originator_id)
        if e.step == "Household.Relapsed":
            since = h["relapses"][-1][2] if h["relapses"] else 0
            for s in self._signed(rows, e, since, EXIT_STEPS):
                self._liable(rows, e, "exit_relapsed", s, household_id=e.originator_id,
                             detail=e["cause"])
            h["relapses"] = [*h["relapses"], [e.day.isoformat(), e["cause"], e.position]]
            h["relapse_count"] += 1
        else:
            h.update(removed_on=e.day, removal_reason=e["reason"], removed_position=e.position)
            for s in self._signed(rows, e, 0, None):
                self._liable(rows, e, "household_removed", s, household_id=e.originator_id,
                             detail=e["reason"])
            paid = _query(rows, select(movements).where(
                movements.c.payee_id == e.originator_id, movements.c.payee_kind == "household",
                movements.c.kind == "disbursed"))
            for m in paid:
                self._paid_removed(rows, h, m)
        rows.changed(households, h)

    @staticmethod
    def _signed(rows: Rows, e: Event, after: int, steps: tuple[str, ...] | None) -> list[dict]:
        """The signatures on the household's steps between log positions ``after`` and ``e``.

        Read from the table (after writing the batch so far): removals and relapses are
        rare, so the projection keeps no per-household copy of its signatures.
        """
        rows.flush()
        s = signatures
        q = (select(s.c.official_id, s.c.step, s.c.role, s.c.effective_date, s.c.log_position)
             .where(s.c.originator_id == e.originator_id, s.c.log_position > after,
                    s.c.log_position < e.position))
        if steps:
            q = q.where(s.c.step.in_(steps))
        return _query(rows, q)

    def _paid_removed(self, rows: Rows, h: Row, m: Row) -> None:
        """A payment to a removed household: its signers answer for recovering it."""
        for official, role in m["signers"]:
            rows.insert(liabilities, {
                "official_id": official, "kind": "paid_removed_household",
                "signed_position": m["log_position"], "event_position": h["removed_position"],
                "step": "FundAccount.Disbursed", "role": role, "signed_on": m["effective_date"],
                "happened_on": h["removed_on"], "household_id": h["household_id"],
                "account_id": m["account_id"], "movement_id": m["movement_id"],
                "amount_fen": m["amount_fen"], "detail": h["removal_reason"]})

    # what became of a movement ---------------------------------------------------------
    def _money(self, e: Event, rows: Rows) -> None:
        kind = MONEY_KINDS[e.step]
        payment = rows.insert(movements, {
            "account_id": e.originator_id, "movement_id": e["movement_id"], "kind": kind,
            "amount_fen": e["amount_fen"], "effective_date": e.day, "purpose": e["purpose"],
            "payee_kind": e.get("payee_kind"), "payee_id": e.get("payee_id"),
            "recovered_fen": 0, "reversed_by": None, "log_position": e.position,
            "signers": [[s["official_id"], s["role"]] for s in e["signatures"]]})
        if kind == "disbursed" and e["payee_kind"] == "household":
            h = rows.get(households, e["payee_id"])
            if h is not None and h["removed_on"] is not None:  # stored after the removal
                self._paid_removed(rows, h, payment)
        elif kind == "returned":  # 退回: money back, nobody answers for it
            m = rows.need(movements, e.originator_id, e["of_movement_id"])
            m["recovered_fen"] += e["amount_fen"]
            rows.changed(movements, m)
        elif kind in ("recovered", "reversed"):
            m = rows.need(movements, e.originator_id, e["of_movement_id"])
            if kind == "recovered":
                m["recovered_fen"] += e["amount_fen"]
                liability = "payment_recovered"
            else:
                m["reversed_by"] = e["movement_id"]
                liability = REVERSED[m["kind"]]
            rows.changed(movements, m)
            for official, role in m["signers"]:
                signer = {"official_id": official, "step": STEPS_OF[m["kind"]], "role": role,
                          "effective_date": m["effective_date"], "log_position": m["log_position"]}
                self._liable(rows, e, liability, signer,
                             household_id=m["payee_id"] if m["payee_kind"] == "household" else None,
                             account_id=e.originator_id, movement_id=m["movement_id"],
                             amount_fen=e["amount_fen"], detail=e["reason"])

    @staticmethod
    def _liable(rows: Rows, e: Event, kind: str, signer: dict, **what: object) -> None:
        """``signer`` (a signature: official, step, role, date, log position) answers for ``e``."""
        rows.insert(liabilities, {
            "official_id": signer["official_id"], "kind": kind,
            "signed_position": signer["log_position"], "event_position": e.position,
            "step": signer["step"], "role": signer["role"], "signed_on": signer["effective_date"],
            "happened_on": e.day, "household_id": None, "account_id": None,
            "movement_id": None, "amount_fen": None, "detail": None, **what})

    # officials and their keys ---------------------------------------------------------
    @handles("Official.Registered")
    def registered(self, e: Event, rows: Rows) -> None:
        rows.insert(officials, {"official_id": e.originator_id, "code": e["code"],
                                "name": e["name"], "unit_code": e["unit_code"],
                                "region_code": e["region_code"]})

    @handles("Official.KeyRegistered")
    def key_registered(self, e: Event, rows: Rows) -> None:
        rows.insert(keys, {"official_id": e.originator_id, "key_id": e["key_id"],
                           "valid_from": e["valid_from"], "valid_until": None,
                           "revoked_on": None, "revocation_reason": None})

    @handles("Official.KeyRotated")
    def key_rotated(self, e: Event, rows: Rows) -> None:
        old = rows.need(keys, e.originator_id, e["old_key_id"])
        old["valid_until"] = e.day
        rows.changed(keys, old)
        rows.insert(keys, {"official_id": e.originator_id, "key_id": e["key_id"],
                           "valid_from": e.day, "valid_until": None, "revoked_on": None,
                           "revocation_reason": None})

    @handles("Official.KeyRevoked")
    def key_revoked(self, e: Event, rows: Rows) -> None:
        key = rows.need(keys, e.originator_id, e["key_id"])
        if key["valid_until"] is None or e.day < key["valid_until"]:
            key["valid_until"] = e.day
        key["revoked_on"], key["revocation_reason"] = e.day, e["reason"]
        rows.changed(keys, key)


def _query(rows: Rows, query: Any) -> list[dict]:
    return [dict(r) for r in rows.conn.execute(query).mappings()]
