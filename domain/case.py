"""Cases (案件) of discipline inspection (纪检监察): evidence, 一案双查, 问责, 追回, 整改.

A case is opened from a red flag (问题线索) or by hand, against officials (the persons
under review) about events in a region.  Its life, every step an event:

``Opened`` (type, region, incident date, persons, evidence, suspended policies) →
``EvidenceLinked`` / ``PersonAdded`` / ``FindingRecorded`` (any number) →
``AccountabilityImposed`` (问责: 诫勉谈话, 通报批评, 党纪政务处分 … against one official) →
``RecoveryOrdered`` (追回: payments, amount, the signers charged) →
``RectificationItemAdded`` / ``RectificationItemCompleted`` (整改) → ``Rectified`` →
``Closed``.

**一案双查** (one case, two investigations): when a person under review acted at village
or township level, the application service adds, as persons under review with the reason,
the officials who on the incident date held a responsibility position (第一责任, 直接责任,
领导责任 — not 经办) over that region and over the level above (``oversight_leaders``).

**谁签字谁追回**: a recovery order charges each payment's outstanding amount to the
officials who signed it, split by ``split_liability``: equal shares per signing official;
the fen that do not divide go one each to the approver, then the reviewer, then the
preparer.  The order is covered by ``FundAccount.Recovered`` events of those payments.

**Policy suspension**: a case may suspend policy kinds (purpose codes) in its village;
the application service records it on the village (``Region.PolicySuspended``) and lifts
it when the case is rectified (``Region.PolicyResumed``).

Cases are decisions of the discipline commission recorded by an inspector, not signed
fund steps: each event names who recorded it (``recorded_by``).

**What a case may name**:

* ``case_no`` (案号): 1 to 64 letters (any script), digits, ``-``, ``_`` and the brackets
  of an official document number ``〔〕`` (``镇纪〔2025〕3号``, ``K-2025_3``) — no spaces,
  dots, slashes or backslashes (``CASE_NO_PATTERN``, ``check_case_no``, on opening);
* dates: from 2013-01-01 to the record date + 1 day, a rectification deadline up to 5
  years after it (``domain.limits``: the application service checks them, with its clock);
* evidence and flags: within the case's region subtree (``check_within_case``,
  ``EvidenceOutsideCase``): a household's village, an account's or project's region, an
  official's region, a payment's payee (household or project; otherwise its account), an
  event's subject (a payment's event: the payment's), a flag's region.  Documents have no
  region.  Where a reference lies is found by whoever can look it up (the HTTP adapter,
  ``api/routes/cases.py``) and held to this rule.

Why one file: the case is one aggregate and one procedure; the rules that admit what it
records (numbers, dates, evidence, the recovery split) are read beside the steps they
guard, and split apart they would be read without them.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import AlreadyExists, DomainError, InvalidInput, NotFound, StepOutOfOrder
from domain.money import PURPOSES
from domain.positions import ResponsibilityKind
from domain.region import RegionPath, stable_id
from domain.signed import business_date


class CaseType(str, enum.Enum):
    """案件类型."""

    FALSE_CLAIM = "false_claim"  # 虚报冒领
    DIVERSION = "diversion"  # 截留挪用
    FAVOURITISM = "favouritism"  # 优亲厚友
    EMBEZZLEMENT = "embezzlement"  # 贪污侵占
    IDLE_FUNDS = "idle_funds"  # 资金闲置 (滞留)
    FAKE_EXIT = "fake_exit"  # 数字脱贫 / 虚假脱贫
    WRONG_IDENTIFICATION = "wrong_identification"  # 识别不精准 (错评、漏评)
    DUTY_NEGLECT = "duty_neglect"  # 失职失责
    OTHER = "other"  # 其他


class AccountabilityAction(str, enum.Enum):
    """问责方式."""

    ADMONITION_TALK = "admonition_talk"  # 诫勉谈话
    CRITICISM = "criticism"  # 通报批评
    WARNING = "warning"  # 警告 (党纪/政务)
    SERIOUS_WARNING = "serious_warning"  # 严重警告 / 记过
    DEMOTION = "demotion"  # 撤销职务 / 降级
    DISMISSAL = "dismissal"  # 开除
    TRANSFER_TO_PROSECUTION = "transfer_to_prosecution"  # 移送司法机关


class EvidenceKind(str, enum.Enum):
    EVENT = "event"  # a log position
    HOUSEHOLD = "household"
    OFFICIAL = "official"
    PAYMENT = "payment"  # a movement id (with its account)
    ACCOUNT = "account"
    FLAG = "flag"
    DOCUMENT = "document"


class Basis(str, enum.Enum):
    """Why someone is under review in the case."""

    SUBJECT = "subject"  # 直接当事人
    OVERSIGHT = "oversight"  # 一案双查: leader with responsibility over the unit


CaseStatus = str  # "open" | "rectified" | "closed"
OVERSIGHT_RESPONSIBILITIES = frozenset({ResponsibilityKind.FIRST.value,
                                        ResponsibilityKind.DIRECT.value,
                                        ResponsibilityKind.LEADING.value})
OVERSIGHT_LEVELS = ("village", "township")
ROLE_ORDER = ("approver", "reviewer", "preparer")
"""Who takes the fen that do not divide equally, first to last (see ``split_liability``)."""


CASE_NO_PATTERN = r"^[\w〔〕-]{1,64}$"
"""A case number: letters, digits, '-', '_' and 〔〕, 1 to 64 of them."""
_CASE_NO = re.compile(CASE_NO_PATTERN)


class EvidenceOutsideCase(DomainError):
    """Evidence or a flag a case names lies outside the case's region subtree."""


class CaseClosed(DomainError):
    """A closed case takes no more steps."""

    status = 409


class RectificationOutstanding(DomainError):
    """A case with open rectification items (整改) cannot be rectified or closed."""

    status = 409


class PolicySuspended(DomainError):
    """Payments of a suspended policy kind to a village with an open, unrectified case."""

    status = 409


def check_case_no(value: object, field: str = "case_no") -> str:
    """A case number of ``CASE_NO_PATTERN`` (it names files and URLs: no dots, slashes,
    backslashes, spaces or control characters)."""
    if not isinstance(value, str) or not _CASE_NO.fullmatch(value):
        raise InvalidInput("must be 1 to 64 letters, digits, '-', '_' or 〔〕 (no spaces, "
                           "dots, slashes or backslashes)", field=field)
    return value


def within(region_path: Mapping[str, str], inner: Mapping[str, str]) -> bool:
    """Whether a subject at ``inner`` lies in the subtree of ``region_path`` (the same
    code at every level of ``region_path``)."""
    return all(inner.get(level) == code for level, code in region_path.items())


def check_within_case(region_path: Mapping[str, str], what: str,
                      inner: Mapping[str, str] | None, field: str) -> None:
    """Refuse a piece of evidence (or a flag) that lies outside the case's region subtree;
    ``inner`` None: it has no region (only an all-regions case would take it)."""
    if inner is None or not within(region_path, inner):
        case_at = "/".join(region_path.values()) or "every region"
        where = "/".join(inner.values()) if inner else "no region"
        raise EvidenceOutsideCase(
            f"{what} lies in {where}, outside the case's region {case_at}: evidence must lie "
            "within the case's region subtree", field=field)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a non-empty string", field=field)
    return value.strip()


def _uuid(value: object, field: str) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError as exc:
        raise InvalidInput("must be a UUID", field=field) from exc


def _enum(kind: type[enum.Enum], value: object, field: str) -> str:
    try:
        return kind(value).value
    except ValueError as exc:
        raise InvalidInput(f"must be one of {[k.value for k in kind]}", field=field) from exc


def evidence_item(item: Mapping[str, Any], field: str) -> dict[str, Any]:
    """{kind, ref, note?, account_id? (payments)} → the stored form."""
    if not isinstance(item, Mapping):
        raise InvalidInput("must be an object {kind, ref, note}", field=field)
    kind = _enum(EvidenceKind, item.get("kind"), f"{field}.kind")
    ref = item.get("ref")
    if kind == "event":
        if isinstance(ref, bool) or not isinstance(ref, int) or ref <= 0:
            raise InvalidInput("an event is referenced by its log position (a positive integer)",
                               field=f"{field}.ref")
    elif kind in ("household", "official", "payment", "account"):
        ref = _uuid(ref, f"{field}.ref")
    else:
        ref = _text(ref, f"{field}.ref")
    out: dict[str, Any] = {"kind": kind, "ref": ref, "note": str(item.get("note") or "")}
    if kind == "payment":
        out["account_id"] = _uuid(item.get("account_id"), f"{field}.account_id")
    unknown = sorted(set(item) - {"kind", "ref", "note", "account_id"})
    if unknown:
        raise InvalidInput("evidence has kind, ref, note and (payments) account_id only",
                           field=f"{field}.{unknown[0]}")
    return out


def suspended_purposes(value: object, field: str = "suspend_policies") -> list[str]:
    """Purpose codes paid to households or projects (the policy kinds a case can suspend)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidInput("must be a list of purpose codes", field=field)
    out = []
    for i, code in enumerate(value):
        p = PURPOSES.get(code) if isinstance(code, str) else None
        if p is None or p.negative_list_item or not p.payees:
            payable = sorted(c for c, q in PURPOSES.items() if q.payees and not q.negative_list_item)
            raise InvalidInput(f"must be a purpose paid to households or projects; one of {payable}",
                               field=f"{field}[{i}]")
        if code not in out:
            out.append(code)
    return out


def split_liability(amount_fen: int, signers: Sequence[Mapping[str, str]]) -> list[dict]:
    """谁签字谁追回: ``amount_fen`` split over the distinct officials who signed a payment.

    Equal shares per official; the remaining fen go one each, in the order approver,
    reviewer, preparer (an official signing in two roles counts once, at the earlier role
    of that order).  The shares always add up to ``amount_fen``.
    """
    rank = {r: i for i, r in enumerate(ROLE_ORDER)}
    best: dict[str, str] = {}
    for s in signers:
        role = s["role"]
        if role not in rank:
            continue  # witnesses do not answer for money
        oid = s["official_id"]
        if oid not in best or rank[role] < rank[best[oid]]:
            best[oid] = role
    if not best:
        raise InvalidInput("the payment has no signers in a money role", field="payments")
    ordered = sorted(best.items(), key=lambda kv: (rank[kv[1]], kv[0]))
    share, rest = divmod(amount_fen, len(ordered))
    return [{"official_id": oid, "role": role, "share_fen": share + (1 if i < rest else 0)}
            for i, (oid, role) in enumerate(ordered)]


class Case(Aggregate):
    """A discipline inspection case (纪检监察案件), identified by its case number (案号)."""

    @staticmethod
    def create_id(case_no: str, **_: object) -> UUID:
        return stable_id("case", case_no)

    @classmethod
    def open(cls, *, case_no: str, case_type: str, title: str, region_code: str,
             region_path: RegionPath, effective_date: dt.date, incident_date: dt.date,
             persons: Sequence[Mapping[str, Any]], evidence: Sequence[Mapping[str, Any]],
             flag_ids: Sequence[str], suspend_policies: Sequence[str], recorded_by: str) -> Case:
        opened = business_date(effective_date)
        incident = business_date(incident_date, "incident_date")
        if incident > opened:
            raise InvalidInput("the incident cannot be after the case is opened",
                               field="incident_date")
        suspend = suspended_purposes(suspend_policies)
        if suspend and "village" not in region_path:
            raise InvalidInput("policies are suspended in a village; this case is about a "
                               f"{list(region_path)[-1] if region_path else 'region'}",
                               field="suspend_policies")
        if not isinstance(flag_ids, (list, tuple)) or not all(
                isinstance(f, str) and f for f in flag_ids):
            raise InvalidInput("must be a list of flag ids", field="flag_ids")
        return cls(case_no=check_case_no(case_no),
                   case_type=_enum(CaseType, case_type, "case_type"),
                   title=_text(title, "title"), region_code=region_code,
                   region_path=dict(region_path), effective_date=opened, incident_date=incident,
                   persons=list(persons),
                   evidence=[evidence_item(e, f"evidence[{i}]") for i, e in enumerate(evidence)],
                   flag_ids=list(flag_ids), suspend_policies=suspend,
                   recorded_by=_text(recorded_by, "recorded_by"))

    @event("Opened")
    def __init__(self, case_no: str, case_type: str, title: str, region_code: str,
                 region_path: dict[str, str], effective_date: dt.date, incident_date: dt.date,
                 persons: list[dict], evidence: list[dict], flag_ids: list[str],
                 suspend_policies: list[str], recorded_by: str) -> None:
        self.case_no = case_no
        self.case_type = case_type
        self.title = title
        self.region_code = region_code
        self.region_path = dict(region_path)
        self.opened_on = effective_date
        self.incident_date = incident_date
        self.persons: dict[str, dict] = {p["official_id"]: dict(p) for p in persons}
        self.evidence: list[dict] = list(evidence)
        self.flag_ids = list(flag_ids)
        self.suspend_policies = list(suspend_policies)
        self.findings: dict[str, dict] = {}
        self.actions: list[dict] = []
        self.orders: dict[str, dict] = {}
        self.items: dict[str, dict] = {}  # rectification items by id
        self.status: CaseStatus = "open"
        self.last_on = effective_date

    # guards ------------------------------------------------------------------------
    def _step(self, effective_date: object) -> dt.date:
        if self.status == "closed":
            raise CaseClosed(f"case {self.case_no} is closed", field="case_no")
        day = business_date(effective_date)
        if day < self.opened_on:
            raise InvalidInput(f"is before the case was opened on {self.opened_on}",
                               field="effective_date")
        return day

    # evidence and persons ----------------------------------------------------------
    def link_evidence(self, *, items: Sequence[Mapping[str, Any]], effective_date: dt.date,
                      recorded_by: str) -> int:
        day = self._step(effective_date)
        new = [e for e in (evidence_item(x, f"items[{i}]") for i, x in enumerate(items))
               if e not in self.evidence]
        if not items:
            raise InvalidInput("give at least one item", field="items")
        for e in new:
            self._evidence_linked(**e, effective_date=day,
                                  recorded_by=_text(recorded_by, "recorded_by"))
        return len(new)

    @event("EvidenceLinked")
    def _evidence_linked(self, kind: str, ref: Any, note: str, effective_date: dt.date,
                         recorded_by: str, account_id: str | None = None) -> None:
        item = {"kind": kind, "ref": ref, "note": note}
        if account_id is not None:
            item["account_id"] = account_id
        self.evidence.append(item)

    def add_person(self, *, official_id: str, basis: str, reason: str, effective_date: dt.date,
                   recorded_by: str, region_code: str | None = None,
                   position: str | None = None) -> bool:
        day = self._step(effective_date)
        oid = _uuid(official_id, "official_id")
        if oid in self.persons:
            return False
        self._person_added(official_id=oid, basis=_enum(Basis, basis, "basis"),
                           reason=_text(reason, "reason"), region_code=region_code,
                           position=position, effective_date=day,
                           recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("PersonAdded")
    def _person_added(self, official_id: str, basis: str, reason: str, region_code: str | None,
                      position: str | None, effective_date: dt.date, recorded_by: str) -> None:
        self.persons[official_id] = {"official_id": official_id, "basis": basis,
                                     "reason": reason, "region_code": region_code,
                                     "position": position}

    def record_finding(self, *, finding_id: str, text: str, effective_date: dt.date,
                       recorded_by: str, amount_fen: int | None = None) -> bool:
        day = self._step(effective_date)
        fid = _text(finding_id, "finding_id")
        content = {"text": _text(text, "text"), "amount_fen": amount_fen}
        if amount_fen is not None and (isinstance(amount_fen, bool) or not isinstance(
                amount_fen, int) or amount_fen < 0):
            raise InvalidInput("must be a non-negative integer number of fen", field="amount_fen")
        if fid in self.findings:
            if self.findings[fid] == content:
                return False
            raise AlreadyExists(f"finding {fid} exists with other content", field="finding_id")
        self._finding_recorded(finding_id=fid, **content, effective_date=day,
                               recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("FindingRecorded")
    def _finding_recorded(self, finding_id: str, text: str, amount_fen: int | None,
                          effective_date: dt.date, recorded_by: str) -> None:
        self.findings[finding_id] = {"text": text, "amount_fen": amount_fen}

    # 问责 ---------------------------------------------------------------------------
    def impose_accountability(self, *, official_id: str, action: str, decision_no: str,
                              reason: str, effective_date: dt.date, recorded_by: str) -> bool:
        day = self._step(effective_date)
        oid = _uuid(official_id, "official_id")
        if oid not in self.persons:
            raise InvalidInput("accountability is imposed on a person under review in this "
                               "case (add them first)", field="official_id")
        content = {"official_id": oid, "action": _enum(AccountabilityAction, action, "action"),
                   "decision_no": _text(decision_no, "decision_no"),
                   "reason": _text(reason, "reason")}
        if any(a == content for a in self.actions):
            return False
        self._accountability_imposed(**content, effective_date=day,
                                     recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("AccountabilityImposed")
    def _accountability_imposed(self, official_id: str, action: str, decision_no: str,
                                reason: str, effective_date: dt.date, recorded_by: str) -> None:
        self.actions.append({"official_id": official_id, "action": action,
                             "decision_no": decision_no, "reason": reason})

    # 追回 ---------------------------------------------------------------------------
    def order_recovery(self, *, order_id: str, payments: Sequence[Mapping[str, Any]],
                       effective_date: dt.date, reason: str, recorded_by: str) -> bool:
        """``payments``: [{account_id, movement_id, amount_fen, outstanding_fen, purpose,
        payee_kind, payee_id, signers: [{official_id, role}]}] as the service found them."""
        day = self._step(effective_date)
        oid = _text(order_id, "order_id")
        if not payments:
            raise InvalidInput("a recovery order names at least one payment", field="payments")
        lines, seen = [], set()
        for i, p in enumerate(payments):
            amount = p["amount_fen"]
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise InvalidInput("must be a positive integer number of fen",
                                   field=f"payments[{i}].amount_fen")
            if amount > p["outstanding_fen"]:
                raise InvalidInput(f"only {p['outstanding_fen']} fen of that payment is still "
                                   "out", field=f"payments[{i}].amount_fen")
            key = (p["account_id"], p["movement_id"])
            if key in seen:
                raise InvalidInput("a payment is listed twice", field=f"payments[{i}].movement_id")
            seen.add(key)
            ordered_before = sum(line["amount_fen"] for o in self.orders.values()
                                 for line in o["payments"]
                                 if (line["account_id"], line["movement_id"]) == key)
            if oid not in self.orders and ordered_before + amount > p["outstanding_fen"]:
                raise InvalidInput(f"{ordered_before} fen of that payment are already ordered "
                                   "back in this case", field=f"payments[{i}].amount_fen")
            lines.append({"account_id": p["account_id"], "movement_id": p["movement_id"],
                          "amount_fen": amount, "purpose": p.get("purpose"),
                          "payee_kind": p.get("payee_kind"), "payee_id": p.get("payee_id"),
                          "liable": split_liability(amount, p["signers"])})
        content = {"order_id": oid, "payments": lines,
                   "total_fen": sum(line["amount_fen"] for line in lines),
                   "reason": _text(reason, "reason")}
        if oid in self.orders:
            if self.orders[oid] == content:
                return False
            raise AlreadyExists(f"recovery order {oid} exists with other content",
                                field="order_id")
        self._recovery_ordered(**content, rule="equal_shares_remainder_to_approver",
                               effective_date=day, recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("RecoveryOrdered")
    def _recovery_ordered(self, order_id: str, payments: list[dict], total_fen: int, reason: str,
                          rule: str, effective_date: dt.date, recorded_by: str) -> None:
        self.orders[order_id] = {"order_id": order_id, "payments": payments,
                                 "total_fen": total_fen, "reason": reason}

    # 整改 ---------------------------------------------------------------------------
    def add_rectification_item(self, *, item_id: str, problem: str, deadline: dt.date,
                               unit_code: str, official_id: str, effective_date: dt.date,
                               recorded_by: str) -> bool:
        day = self._step(effective_date)
        iid = _text(item_id, "item_id")
        due = business_date(deadline, "deadline")
        if due < day:
            raise InvalidInput("the deadline is before the item is set", field="deadline")
        content = {"problem": _text(problem, "problem"), "deadline": due,
                   "unit_code": _text(unit_code, "unit_code"),
                   "official_id": _uuid(official_id, "official_id")}
        if iid in self.items:
            if {k: self.items[iid][k] for k in content} == content:
                return False
            raise AlreadyExists(f"rectification item {iid} exists", field="item_id")
        if self.status != "open":
            raise StepOutOfOrder(f"case {self.case_no} is already rectified", field="item_id")
        self._item_added(item_id=iid, **content, effective_date=day,
                         recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("RectificationItemAdded")
    def _item_added(self, item_id: str, problem: str, deadline: dt.date, unit_code: str,
                    official_id: str, effective_date: dt.date, recorded_by: str) -> None:
        self.items[item_id] = {"problem": problem, "deadline": deadline, "unit_code": unit_code,
                               "official_id": official_id, "completed_on": None}

    def complete_rectification_item(self, *, item_id: str, evidence: str,
                                    effective_date: dt.date, recorded_by: str) -> bool:
        day = self._step(effective_date)
        item = self.items.get(str(item_id))
        if item is None:
            raise NotFound(f"no rectification item {item_id} in case {self.case_no}",
                           field="item_id")
        if item["completed_on"] is not None:
            return False
        self._item_completed(item_id=str(item_id), evidence=_text(evidence, "evidence"),
                             effective_date=day, recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("RectificationItemCompleted")
    def _item_completed(self, item_id: str, evidence: str, effective_date: dt.date,
                        recorded_by: str) -> None:
        self.items[item_id]["completed_on"] = effective_date

    def outstanding_items(self) -> list[str]:
        return sorted(i for i, it in self.items.items() if it["completed_on"] is None)

    def rectify(self, *, effective_date: dt.date, summary: str, recorded_by: str) -> bool:
        """整改到位: every item completed; lifts the case's policy suspension."""
        day = self._step(effective_date)
        if self.status == "rectified":
            return False
        left = self.outstanding_items()
        if left:
            raise RectificationOutstanding(f"rectification items {left} are not completed",
                                           field="items", items=left)
        self._rectified(effective_date=day, summary=_text(summary, "summary"),
                        recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Rectified")
    def _rectified(self, effective_date: dt.date, summary: str, recorded_by: str) -> None:
        self.status = "rectified"

    def close(self, *, effective_date: dt.date, conclusion: str, recorded_by: str) -> bool:
        if self.status == "closed":
            return False
        day = self._step(effective_date)
        if self.outstanding_items():
            raise RectificationOutstanding(
                f"rectification items {self.outstanding_items()} are not completed",
                field="items")
        if self.suspend_policies and self.status != "rectified":
            raise RectificationOutstanding("the case suspends policies in its village: "
                                           "rectify it before closing", field="status")
        self._closed(effective_date=day, conclusion=_text(conclusion, "conclusion"),
                     recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Closed")
    def _closed(self, effective_date: dt.date, conclusion: str, recorded_by: str) -> None:
        self.status = "closed"

