"""Fund accounts (扶贫资金账户) and money movements, in integer fen.

下达 ``Allocated`` moves money down one level, 拨付/发放 ``Disbursed`` pays a household
(到户), a project or a supplier, ``Recovered`` brings wrongly paid money back (追回) and
``Reversed`` corrects an earlier movement by a new event that references it.  Invariants:
no account goes negative; money in = Σ balances + paid out; a household payment needs a
household on the register at the payment's business date; a project payment needs an
approved project within budget; a purpose on the negative list is refused.  Every money
event carries business date, purpose code, document number and three signatures, at the
account's own level — but a payment to a household from a township account may be prepared
by the payee village's 报账员, who makes the 发放清册 (村账乡代管: ``positions.money_rule``).

A payment batch (支付令 + 分户清单, ``BatchOrdered``) pays many households at once, signed
once over a manifest (``domain.batch``); a bank return (回盘, ``ReturnsRecorded``) brings
the failed payments back (``PaymentReturned``), and a later batch may re-issue them.

Why one file: every movement reads and changes the same state (balance, movements, the
batches), and each invariant (never negative, purpose, payee on the register, one
re-issue per return) is checked against it; split, the rules would lose sight of each other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain import batch
from domain.errors import (
    AlreadyReversed,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from domain.household import Household
from domain.money import FundSource, PayeeKind, fen
from domain.money import purpose as purpose_of
from domain.positions import money_rule
from domain.project import Project
from domain.region import RegionLevel, RegionPath, stable_id
from domain.signed import Authoriser, SignedAggregate, business_date
from domain.signing import canonical_json


def _movement_id(value: object) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError as exc:
        raise InvalidInput("must be a UUID chosen by the client (it makes retries safe)",
                           field="movement_id") from exc


def batch_id_of(value: object, field: str = "batch_id") -> str:
    try:
        return str(UUID(str(value)))
    except ValueError as exc:
        raise InvalidInput("must be a UUID chosen by the client (it makes retries safe)",
                           field=field) from exc


def _source(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 300:
        raise InvalidInput("the file a batch came from: text of at most 300 characters, or null",
                           field=field)
    return value


def _count(value: object, field: str = "credited_count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("must be a non-negative integer", field=field)
    return value


def _doc(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("every money event needs its document number (文号/凭证号)",
                           field="document_no")
    return value


class FundAccount(SignedAggregate):
    """One unit's account for one fund source (e.g. county 县 / central 中央)."""

    @staticmethod
    def create_id(region_code: str, fund_source: str, **_: object) -> UUID:
        return stable_id("account", f"{region_code}/{fund_source}")

    @classmethod
    def open(cls, *, region_code: str, level: RegionLevel, region_path: RegionPath,
             fund_source: str, name: str) -> FundAccount:
        try:
            FundSource(fund_source)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[s.value for s in FundSource]}",
                               field="fund_source") from exc
        if level is RegionLevel.VILLAGE:
            raise InvalidInput("accounts are kept from township level up (村账乡代管)",
                               field="region_code")
        return cls(region_code=region_code, level=level.value, region_path=dict(region_path),
                   fund_source=fund_source, name=name or f"{region_code} {fund_source}")

    @event("Opened")
    def __init__(self, region_code: str, level: str, region_path: dict[str, str],
                 fund_source: str, name: str) -> None:
        self.region_code = region_code
        self.level_code = level  # plain text, so snapshots round-trip
        self.region_path = dict(region_path)
        self.fund_source = fund_source
        self.name = name
        self.balance = 0
        self.received = 0  # money that entered from outside, net of reversals
        self.paid_out = 0  # disbursed, net of recoveries and reversals
        self.movements: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # 支付令: batch id → its manifest
        self.accepted = {}

    @property
    def level(self) -> RegionLevel:
        return RegionLevel(self.level_code)

    # shared checks --------------------------------------------------------------
    def _retry_or_new(self, step: str, content: dict[str, Any]) -> bytes | None:
        """The encoded content if this movement is new; None for an exact retry; otherwise
        a conflict (the movement id was used for something else)."""
        encoded = canonical_json(content)
        mid = content["movement_id"]
        if mid not in self.movements:
            return encoded
        if self.already_accepted(f"FundAccount.{step}", encoded):
            return None
        raise IdempotencyConflict(
            f"movement {mid} was already recorded with different content", field="movement_id")

    def _sign(self, step: str, content: dict[str, Any], encoded: bytes,
              authorise: Authoriser, household: Household | None = None) -> list[dict]:
        """The signatures, by ``money_rule``: at the account's level; a payment to
        ``household`` is signed where the household is (its region path, which meets the
        account's at the account's level), so its village's 报账员 may prepare it from a
        township account (村账乡代管)."""
        if household is None:
            rule, path = money_rule(self.level), self.region_path
        else:
            rule, path = money_rule(self.level, PayeeKind.HOUSEHOLD.value), household.region_path
        return authorise(step=f"FundAccount.{step}", subject=self.id, content=encoded,
                         rule=rule, region_path=path, day=content["effective_date"])

    def _need(self, amount: int, field: str = "amount_fen") -> None:
        if amount > self.balance:
            raise InsufficientFunds(
                f"account {self.name} holds {self.balance} fen; {amount} fen would make it "
                "negative", field=field, balance_fen=self.balance)

    def _movement(self, of_movement_id: object) -> dict[str, Any]:
        m = self.movements.get(_movement_id(of_movement_id))
        if m is None:
            raise NotFound(f"no movement {of_movement_id} on account {self.name}",
                           field="of_movement_id")
        return m

    @staticmethod
    def _same_purpose(original: dict[str, Any], content: dict[str, Any]) -> None:
        """A recovery or reversal names (and its signers sign) the purpose it books back to:
        the purpose of the movement it corrects."""
        if content["purpose"] != original["purpose"]:
            raise InvalidInput(f"movement {content['of_movement_id']} was for "
                               f"{original['purpose']}", field="purpose")

    def project_of(self, movement_id: str) -> str | None:
        """The project a payment was charged to (its payee, or the project a supplier built)."""
        m = self.movements.get(movement_id) or {}
        if m.get("kind") != "disbursed" or m.get("payee_kind") == PayeeKind.HOUSEHOLD.value:
            return None
        return m["payee_id"] if m["payee_kind"] == PayeeKind.PROJECT.value else m["project_id"]

    @staticmethod
    def _money(movement_id: object, amount_fen: object, effective_date: object,
               purpose_code: object, document_no: object) -> dict[str, Any]:
        return {"movement_id": _movement_id(movement_id), "amount_fen": fen(amount_fen),
                "effective_date": business_date(effective_date),
                "purpose": purpose_of(purpose_code).code, "document_no": _doc(document_no)}

    # 资金到账: money enters from outside (appropriation from the level above the system)
    def receive(self, *, movement_id: str, amount_fen: int, effective_date: dt.date,
                purpose: str, document_no: str, source: str, authorise: Authoriser) -> bool:
        c = self._money(movement_id, amount_fen, effective_date, purpose, document_no)
        if not source:
            raise InvalidInput("name where the money comes from", field="source")
        c["source"] = source
        if (encoded := self._retry_or_new("Received", c)) is None:
            return False
        self._received(**c, signatures=self._sign("Received", c, encoded, authorise))
        return True

    @event("Received")
    def _received(self, movement_id: str, amount_fen: int, effective_date: dt.date, purpose: str,
                  document_no: str, source: str, signatures: list[dict]) -> None:
        self.balance += amount_fen
        self.received += amount_fen
        self.movements[movement_id] = {"kind": "received", "amount": amount_fen, "refunded": 0,
                                       "reversed": False, "purpose": purpose}

    # 下达: allocate down one level ---------------------------------------------------
    def allocate(self, *, movement_id: str, to: FundAccount, amount_fen: int,
                 effective_date: dt.date, purpose: str, document_no: str,
                 authorise: Authoriser) -> bool:
        c = self._money(movement_id, amount_fen, effective_date, purpose, document_no)
        c["to_account_id"] = str(to.id)
        if (encoded := self._retry_or_new("Allocated", c)) is None:
            return False
        if to.level is not self.level.child or to.region_path.get(self.level.value) != self.region_code:
            raise InvalidInput(f"{to.name} is not an account one level below {self.name}",
                               field="to_account_id")
        if to.fund_source != self.fund_source:
            raise InvalidInput("an allocation keeps its fund source", field="to_account_id")
        self._need(c["amount_fen"])
        self._allocated(**c, signatures=self._sign("Allocated", c, encoded, authorise))
        to._allocation_received(movement_id=c["movement_id"], from_account_id=str(self.id),
                                amount_fen=c["amount_fen"], effective_date=c["effective_date"],
                                purpose=c["purpose"], document_no=c["document_no"])
        return True

    @event("Allocated")
    def _allocated(self, movement_id: str, amount_fen: int, effective_date: dt.date, purpose: str,
                   document_no: str, to_account_id: str, signatures: list[dict]) -> None:
        self.balance -= amount_fen
        self.movements[movement_id] = {"kind": "allocated", "amount": amount_fen, "refunded": 0,
                                       "reversed": False, "purpose": purpose,
                                       "counterparty": to_account_id}

    @event("AllocationReceived")
    def _allocation_received(self, movement_id: str, from_account_id: str, amount_fen: int,
                             effective_date: dt.date, purpose: str, document_no: str) -> None:
        self.balance += amount_fen
        self.movements[movement_id] = {"kind": "allocation_received", "amount": amount_fen,
                                       "refunded": 0, "reversed": False, "purpose": purpose,
                                       "counterparty": from_account_id}

    # 拨付/发放: pay a household, a project or a supplier -------------------------------
    def disburse(self, *, movement_id: str, payee_kind: str, payee_id: str, amount_fen: int,
                 effective_date: dt.date, purpose: str, document_no: str,
                 project_id: str | None = None, household: Household | None = None,
                 project: Project | None = None, authorise: Authoriser) -> bool:
        c = self._money(movement_id, amount_fen, effective_date, purpose, document_no)
        try:
            kind = PayeeKind(payee_kind)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[k.value for k in PayeeKind]}",
                               field="payee_kind") from exc
        if not payee_id:
            raise InvalidInput("must name the payee", field="payee_id")
        c.update(payee_kind=kind.value, payee_id=str(payee_id),
                 project_id=str(project_id) if project_id else None)
        if (encoded := self._retry_or_new("Disbursed", c)) is None:
            return False
        p = purpose_of(c["purpose"])
        if kind not in p.payees:
            raise InvalidInput(f"{p.code} ({p.title}) is not paid to a {kind.value}", field="purpose")
        day = c["effective_date"]
        if kind is PayeeKind.HOUSEHOLD:
            self._check_household(household, c["payee_id"], day, p, "payee_id")
        else:
            pid = c["project_id"] if kind is PayeeKind.SUPPLIER else c["payee_id"]
            if project is None or str(project.id) != pid:
                raise NotFound(f"no project {pid}", field="project_id")
            if project.region_path.get(self.level.value) != self.region_code:
                raise InvalidInput(f"project {project.code} is outside {self.name}'s region",
                                   field="project_id")
            project.check_can_receive(day, c["amount_fen"], c["purpose"])
        self._need(c["amount_fen"])
        self._disbursed(**c, signatures=self._sign(
            "Disbursed", c, encoded, authorise,
            household=household if kind is PayeeKind.HOUSEHOLD else None))
        if project is not None and kind is not PayeeKind.HOUSEHOLD:
            project.record_payment(movement_id=c["movement_id"], account_id=str(self.id),
                                   amount_fen=c["amount_fen"], effective_date=day)
        return True

    def _check_household(self, household: Household | None, payee_id: str, day: dt.date,
                         p: Any, field: str) -> None:
        if household is None or str(household.id) != payee_id:
            raise NotFound(f"no household {payee_id}", field=field)
        if household.region_path.get(self.level.value) != self.region_code:
            raise InvalidInput(f"household {household.code} is outside {self.name}'s region",
                               field=field)
        household.check_can_receive(day, p, field)

    @event("Disbursed")
    def _disbursed(self, movement_id: str, amount_fen: int, effective_date: dt.date, purpose: str,
                   document_no: str, payee_kind: str, payee_id: str, project_id: str | None,
                   signatures: list[dict], batch: dict[str, Any] | None = None) -> None:
        """``batch``: a row of a payment batch (its batch id, row index and the row's other
        signed fields, ``domain.batch``); its ``signatures`` are the batch's, over the
        manifest.  None (and not part of the signed content) for a payment signed alone."""
        self.balance -= amount_fen
        self.paid_out += amount_fen
        m = {"kind": "disbursed", "amount": amount_fen, "refunded": 0, "reversed": False,
             "purpose": purpose, "payee_kind": payee_kind, "payee_id": payee_id,
             "project_id": project_id}
        if batch is not None:
            m["batch_id"] = batch["batch_id"]
            if batch.get("reissue_of"):
                self.movements[batch["reissue_of"]]["reissued_by"] = movement_id
        self.movements[movement_id] = m

    # 支付令 + 分户清单: many payments signed once, over a manifest -----------------------
    def order_batch(self, *, batch_id: str, effective_date: dt.date, purpose: str,
                    document_no: str, payee_kind: str, row_count: int, total_fen: int,
                    rows_root: str, source_file: str | None, source_sha256: str | None,
                    rows: list[dict[str, Any]], households: dict[str, Household],
                    authorise: Authoriser) -> bool:
        """Pay every row of a batch, all or none; the signers sign the manifest once.

        ``rows`` (``domain.batch.payment_row``) must be exactly what ``rows_root``, the
        count and the total commit to.  Each row is checked as a payment to its household
        would be (region, register status on the business date, the purpose's payees, a
        re-issue names a returned payment to the same household); the account must hold the
        total.  ``households``: the payees, loaded by the service.
        """
        bid = batch_id_of(batch_id)
        if payee_kind != PayeeKind.HOUSEHOLD.value:
            raise InvalidInput("batches pay households (到户); pay projects one by one",
                               field="payee_kind")
        checked = [batch.payment_row(r, i, payee_kind)
                   for i, r in enumerate(batch.rows_list(rows))]
        batch.check_manifest(tag=batch.PAYMENT_ROW, manifest_id=bid, rows=checked,
                             row_count=row_count, total_fen=total_fen, root=rows_root)
        c = {"batch_id": bid, "effective_date": business_date(effective_date),
             "purpose": purpose_of(purpose).code, "document_no": _doc(document_no),
             "payee_kind": payee_kind, "row_count": row_count, "total_fen": fen(total_fen),
             "rows_root": rows_root, "source_file": _source(source_file, "source_file"),
             "source_sha256": _source(source_sha256, "source_sha256")}
        encoded = canonical_json(c)
        if bid in self.batches:
            if self.already_accepted("FundAccount.BatchOrdered", encoded):
                return False
            raise IdempotencyConflict(f"batch {bid} was already ordered with another manifest",
                                      field="content.batch_id")
        p = purpose_of(c["purpose"])
        if PayeeKind.HOUSEHOLD not in p.payees:
            raise InvalidInput(f"{p.code} ({p.title}) is not paid to households", field="purpose")
        day = c["effective_date"]
        seen: set[str] = set()
        reissued: set[str] = set()
        for i, r in enumerate(checked):
            where = f"rows[{i}]"
            mid = r["movement_id"]
            if mid in self.movements or mid in seen:
                raise IdempotencyConflict(f"movement {mid} is already used",
                                          field=f"{where}.movement_id")
            seen.add(mid)
            self._check_household(households.get(r["payee_id"]), r["payee_id"], day, p,
                                  f"{where}.payee_id")
            if r["reissue_of"] is not None:
                self._check_reissue(r, reissued, where)
        self._need(c["total_fen"], "content.total_fen")
        villages = {households[r["payee_id"]].region_path.get("village") for r in checked}
        if len(villages) == 1:  # one village's 发放清册: its 报账员 may prepare it (村账乡代管)
            path = households[checked[0]["payee_id"]].region_path
            rule = money_rule(self.level, PayeeKind.HOUSEHOLD.value)
        else:
            path, rule = self.region_path, money_rule(self.level)
        signatures = authorise(step="FundAccount.BatchOrdered", subject=self.id,
                               content=encoded, rule=rule, region_path=path, day=day)
        self._batch_ordered(**c, signatures=signatures)
        for i, r in enumerate(checked):
            self._disbursed(movement_id=r["movement_id"], amount_fen=r["amount_fen"],
                            effective_date=day, purpose=c["purpose"],
                            document_no=c["document_no"], payee_kind=payee_kind,
                            payee_id=r["payee_id"], project_id=None, signatures=signatures,
                            batch={"batch_id": bid, "row": i,
                                   **{k: r[k] for k in batch.PAYMENT_EXTRAS}})
        return True

    def _check_reissue(self, row: dict[str, Any], reissued: set[str], where: str) -> None:
        """A re-issue (重新发放) names a payment the bank returned, to the same household,
        not re-issued before."""
        of = row["reissue_of"]
        original = self.movements.get(of)
        if original is None or original.get("kind") != "disbursed":
            raise NotFound(f"no payment {of} on account {self.name}", field=f"{where}.reissue_of")
        if not original.get("returned"):
            raise InvalidInput(f"payment {of} was not returned by the bank; only a returned "
                               "payment is re-issued", field=f"{where}.reissue_of")
        if original["payee_id"] != row["payee_id"]:
            raise InvalidInput(f"payment {of} was to another payee", field=f"{where}.reissue_of")
        if original.get("reissued_by") or of in reissued:
            raise InvalidInput(f"payment {of} was already re-issued",
                               field=f"{where}.reissue_of")
        reissued.add(of)

    @event("BatchOrdered")
    def _batch_ordered(self, batch_id: str, effective_date: dt.date, purpose: str,
                       document_no: str, payee_kind: str, row_count: int, total_fen: int,
                       rows_root: str, source_file: str | None, source_sha256: str | None,
                       signatures: list[dict]) -> None:
        self.batches[batch_id] = {"row_count": row_count, "total_fen": total_fen,
                                  "purpose": purpose, "effective_date": effective_date,
                                  "return_id": None}

    # 回盘: the bank's answer to a batch; returned payments come back to the account ----
    def record_returns(self, *, return_id: str, batch_id: str, effective_date: dt.date,
                       document_no: str, row_count: int, returned_fen: int,
                       credited_count: int, credited_fen: int, rows_root: str,
                       source_file: str | None, source_sha256: str | None,
                       rows: list[dict[str, Any]], authorise: Authoriser) -> bool:
        """Record a batch's bank return: ``rows`` are the returned (failed) payments, each
        of which comes back to the account as its own ``PaymentReturned``; the batch's
        other rows were credited.  The counts and totals must add up to the batch's."""
        rid, bid = batch_id_of(return_id, "return_id"), batch_id_of(batch_id)
        checked = [batch.return_row(r, i) for i, r in enumerate(rows or [])]
        if not isinstance(rows, list):
            raise InvalidInput("a bank return carries its returned rows (a list, maybe empty)",
                               field="rows")
        batch.check_manifest(tag=batch.RETURN_ROW, manifest_id=rid, rows=checked,
                             row_count=row_count, total_fen=returned_fen, root=rows_root,
                             total_field="returned_fen")
        c = {"return_id": rid, "batch_id": bid, "effective_date": business_date(effective_date),
             "document_no": _doc(document_no), "row_count": row_count,
             "returned_fen": returned_fen, "credited_count": _count(credited_count),
             "credited_fen": _count(credited_fen, "credited_fen"), "rows_root": rows_root,
             "source_file": _source(source_file, "source_file"),
             "source_sha256": _source(source_sha256, "source_sha256")}
        encoded = canonical_json(c)
        ordered = self.batches.get(bid)
        if ordered is None:
            raise NotFound(f"no batch {bid} on account {self.name}", field="content.batch_id")
        if ordered["return_id"] is not None:
            if ordered["return_id"] == rid and self.already_accepted(
                    "FundAccount.ReturnsRecorded", encoded):
                return False
            raise IdempotencyConflict(f"batch {bid} already has its bank return "
                                      f"{ordered['return_id']}", field="content.batch_id")
        if c["effective_date"] < ordered["effective_date"]:
            raise InvalidInput("a bank return comes after the batch it answers",
                               field="effective_date")
        if row_count + c["credited_count"] != ordered["row_count"]:
            raise InvalidInput(f"the batch has {ordered['row_count']} rows; {row_count} returned "
                               f"and {c['credited_count']} credited", field="content.credited_count")
        if returned_fen + c["credited_fen"] != ordered["total_fen"]:
            raise InvalidInput(f"the batch ordered {ordered['total_fen']} fen; returned and "
                               "credited must add up to it", field="content.credited_fen")
        seen: set[str] = set()
        for i, r in enumerate(checked):
            where = f"rows[{i}]"
            m = self.movements.get(r["of_movement_id"])
            if m is None or m.get("batch_id") != bid or r["of_movement_id"] in seen:
                raise InvalidInput(f"{r['of_movement_id']} is not a payment of batch {bid}"
                                   if r["of_movement_id"] not in seen else "named twice",
                                   field=f"{where}.of_movement_id")
            seen.add(r["of_movement_id"])
            if m["amount"] != r["amount_fen"]:
                raise InvalidInput(f"that payment was {m['amount']} fen",
                                   field=f"{where}.amount_fen")
            if m["reversed"] or m["refunded"]:
                raise InvalidInput("that payment was already reversed or recovered",
                                   field=f"{where}.of_movement_id")
        signatures = self._sign("ReturnsRecorded", c, encoded, authorise)
        self._returns_recorded(**c, signatures=signatures)
        for i, r in enumerate(checked):
            self._payment_returned(
                movement_id=batch.returned_movement_id(rid, i), of_movement_id=r["of_movement_id"],
                amount_fen=r["amount_fen"], effective_date=c["effective_date"],
                purpose=ordered["purpose"], document_no=c["document_no"], reason=r["reason"],
                signatures=signatures,
                batch={"return_id": rid, "row": i, **{k: r[k] for k in batch.RETURN_EXTRAS}})
        return True

    @event("ReturnsRecorded")
    def _returns_recorded(self, return_id: str, batch_id: str, effective_date: dt.date,
                          document_no: str, row_count: int, returned_fen: int,
                          credited_count: int, credited_fen: int, rows_root: str,
                          source_file: str | None, source_sha256: str | None,
                          signatures: list[dict]) -> None:
        self.batches[batch_id]["return_id"] = return_id

    @event("PaymentReturned")
    def _payment_returned(self, movement_id: str, of_movement_id: str, amount_fen: int,
                          effective_date: dt.date, purpose: str, document_no: str, reason: str,
                          signatures: list[dict], batch: dict[str, Any]) -> None:
        """退回: the bank could not credit the payment; the money is back on the account."""
        original = self.movements[of_movement_id]
        original["refunded"] += amount_fen
        original["returned"] = True
        self.balance += amount_fen
        self.paid_out -= amount_fen
        self.movements[movement_id] = {"kind": "returned", "amount": amount_fen, "refunded": 0,
                                       "reversed": True, "purpose": purpose}

    # 追回: wrongly paid money comes back ---------------------------------------------
    def recover(self, *, movement_id: str, of_movement_id: str, amount_fen: int,
                effective_date: dt.date, purpose: str, document_no: str, reason: str,
                project: Project | None = None, authorise: Authoriser) -> bool:
        original = self._movement(of_movement_id)
        c = self._money(movement_id, amount_fen, effective_date, purpose, document_no)
        c.update(of_movement_id=_movement_id(of_movement_id), reason=reason)
        if (encoded := self._retry_or_new("Recovered", c)) is None:
            return False
        self._same_purpose(original, c)
        if not reason:
            raise InvalidInput("a recovery names its reason", field="reason")
        if original["kind"] != "disbursed" or original["reversed"]:
            raise InvalidInput("only a standing payment (Disbursed) can be recovered",
                               field="of_movement_id")
        outstanding = original["amount"] - original["refunded"]
        if c["amount_fen"] > outstanding:
            raise InvalidInput(f"only {outstanding} fen of that payment is still out",
                               field="amount_fen")
        self._recovered(**c, signatures=self._sign("Recovered", c, encoded, authorise))
        if project is not None and self.project_of(c["of_movement_id"]) == str(project.id):
            project.record_refund(movement_id=c["movement_id"], of_movement_id=c["of_movement_id"],
                                  amount_fen=c["amount_fen"], effective_date=c["effective_date"])
        return True

    @event("Recovered")
    def _recovered(self, movement_id: str, amount_fen: int, effective_date: dt.date, purpose: str,
                   document_no: str, of_movement_id: str, reason: str,
                   signatures: list[dict]) -> None:
        self.balance += amount_fen
        self.paid_out -= amount_fen
        self.movements[of_movement_id]["refunded"] += amount_fen
        self.movements[movement_id] = {"kind": "recovered", "amount": amount_fen, "refunded": 0,
                                       "reversed": True, "purpose": purpose}

    # 冲正: a new event that undoes an earlier one -------------------------------------
    def reverse(self, *, movement_id: str, of_movement_id: str, amount_fen: int,
                effective_date: dt.date, purpose: str, document_no: str, reason: str,
                counterpart: FundAccount | None = None, project: Project | None = None,
                authorise: Authoriser) -> bool:
        original = self._movement(of_movement_id)
        amount = original["amount"] - original["refunded"]
        c = self._money(movement_id, amount_fen, effective_date, purpose, document_no)
        c.update(of_movement_id=_movement_id(of_movement_id), reason=reason)
        if (encoded := self._retry_or_new("Reversed", c)) is None:
            return False
        self._same_purpose(original, c)
        if not reason:
            raise InvalidInput("a reversal names its reason", field="reason")
        if original["reversed"]:
            raise AlreadyReversed(f"movement {of_movement_id} is already reversed",
                                  field="of_movement_id")
        if original["kind"] not in ("received", "allocated", "disbursed"):
            raise InvalidInput("only receipts, allocations and payments are reversed here",
                               field="of_movement_id")
        if c["amount_fen"] != amount:
            raise InvalidInput(f"a reversal undoes what is left of the movement: {amount} fen",
                               field="amount_fen")
        if original["kind"] == "received":
            self._need(amount, "of_movement_id")
        if original["kind"] == "allocated":
            if counterpart is None or str(counterpart.id) != original["counterparty"]:
                raise NotFound("the receiving account is needed to reverse an allocation",
                               field="of_movement_id")
            counterpart._need(amount, "of_movement_id")
        self._reversed(**c, signatures=self._sign("Reversed", c, encoded, authorise))
        if counterpart is not None and original["kind"] == "allocated":
            counterpart._allocation_reversed(movement_id=c["movement_id"],
                                             of_movement_id=c["of_movement_id"],
                                             amount_fen=amount, effective_date=c["effective_date"],
                                             purpose=c["purpose"], document_no=c["document_no"])
        if project is not None and self.project_of(c["of_movement_id"]) == str(project.id):
            project.record_refund(movement_id=c["movement_id"], of_movement_id=c["of_movement_id"],
                                  amount_fen=amount, effective_date=c["effective_date"])
        return True

    @event("Reversed")
    def _reversed(self, movement_id: str, of_movement_id: str, effective_date: dt.date,
                  purpose: str, document_no: str, reason: str, amount_fen: int,
                  signatures: list[dict]) -> None:
        original = self.movements[of_movement_id]
        original["reversed"] = True
        kind = original["kind"]
        if kind == "received":
            self.balance -= amount_fen
            self.received -= amount_fen
        elif kind == "allocated":
            self.balance += amount_fen
        else:  # disbursed
            self.balance += amount_fen
            self.paid_out -= amount_fen
        self.movements[movement_id] = {"kind": "reversed", "amount": amount_fen, "refunded": 0,
                                       "reversed": True, "purpose": purpose}

    @event("AllocationReversed")
    def _allocation_reversed(self, movement_id: str, of_movement_id: str, amount_fen: int,
                             effective_date: dt.date, purpose: str, document_no: str) -> None:
        self.balance -= amount_fen
        self.movements[of_movement_id]["reversed"] = True
