"""Leads (问题线索) carried to a conclusion (线索处置): every move an event, none lost.

A lead is raised from a red flag (``projections.flags``) or a comparison-model match
(大数据比对, ``projections.compare``); its id is derived from its **evidence key** (the
flag's id, or the match's id — a match's id names the model and what it found, not the
register snapshot, so a newer snapshot finding the same thing gives the same key), so the
same evidence is never raised twice: raising it again answers with the lead that exists,
and a lead closed as 不属实 (unfounded) keeps its reasons and stops the evidence coming back.

The moves, each an event recorded under the inspector's name (``recorded_by``, as the
case steps of ``domain.case``: the caller's token, never the body's word):

``Raised`` → ``Assigned`` (交办: to a unit and a person, with a deadline in working days
on the Chinese calendar — the adapter computes it, ``inspection.workdays``) →
``Verified`` (核实: 属实 ``founded`` / 部分属实 ``partly`` / 不属实 ``unfounded``, reasons,
evidence, money involved) → ``Reported`` (反馈 by the unit) → ``Reviewed`` (审核 by the
inspector: accepted, or sent back, which returns the lead to 交办 for a new 核实) →
``Closed`` with one of the 四类处置 (谈话函询 ``talk_inquiry``, 初步核实
``preliminary_check``, 暂存待查 ``shelved``, 予以了结 ``concluded``) or 立案
(``case_opened``: the case is opened by the application service with the lead as its
evidence; ``open_lead_case``).  An unfounded lead can only be concluded (予以了结).

A lead is **overdue** when it was not reported (反馈) by its deadline (judged by the read
side, ``projections.leads``, on a date).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InvalidInput, StepOutOfOrder
from domain.region import RegionPath, stable_id
from domain.signed import business_date


class Verdict(str, enum.Enum):
    """核实结论."""

    FOUNDED = "founded"  # 属实
    PARTLY = "partly"  # 部分属实
    UNFOUNDED = "unfounded"  # 不属实


class Disposition(str, enum.Enum):
    """四类处置, or 立案."""

    TALK_INQUIRY = "talk_inquiry"  # 谈话函询
    PRELIMINARY_CHECK = "preliminary_check"  # 初步核实
    SHELVED = "shelved"  # 暂存待查
    CONCLUDED = "concluded"  # 予以了结
    CASE_OPENED = "case_opened"  # 立案


VERDICT_ZH = {"founded": "属实", "partly": "部分属实", "unfounded": "不属实"}
DISPOSITION_ZH = {"talk_inquiry": "谈话函询", "preliminary_check": "初步核实",
                  "shelved": "暂存待查", "concluded": "予以了结", "case_opened": "立案"}
STATUS_ZH = {"raised": "待交办", "assigned": "已交办", "verified": "已核实",
             "reported": "已反馈", "reviewed": "已审核", "closed": "已办结"}
SOURCE_KINDS = ("flag", "match")


class LeadUnfounded(DomainError):
    """The evidence was raised before and its lead was found unfounded (不属实)."""

    status = 409


class LeadClosed(DomainError):
    """A closed lead takes no more moves."""

    status = 409


def _text(value: object, field: str, limit: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a non-empty string", field=field)
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters", field=field)
    return value.strip()


def _enum(kind: type[enum.Enum], value: object, field: str) -> str:
    try:
        return kind(value).value
    except ValueError as exc:
        raise InvalidInput(f"must be one of {[k.value for k in kind]}", field=field) from exc


def _fen(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**15:
        raise InvalidInput("must be a whole number of fen ≥ 0", field=field)
    return value


def lead_id(source_kind: str, source_ref: str) -> UUID:
    return stable_id("lead", f"{source_kind}:{source_ref}")


def lead_no(lid: UUID | str) -> str:
    """The lead's number as shown (线索编号): XS- and the first 10 hex digits of its id."""
    return "XS-" + UUID(str(lid)).hex[:10].upper()


class Lead(Aggregate):
    """A lead (问题线索) and its disposition (线索处置)."""

    @staticmethod
    def create_id(source_kind: str, source_ref: str, **_: object) -> UUID:
        return lead_id(source_kind, source_ref)

    @classmethod
    def raise_lead(cls, *, source_kind: str, source_ref: str, rule_id: str, severity: str,
                   region_code: str | None, region_path: RegionPath, summary: str,
                   evidence: Sequence[Mapping[str, Any]], signers: Sequence[str],
                   effective_date: dt.date, recorded_by: str) -> Lead:
        if source_kind not in SOURCE_KINDS:
            raise InvalidInput(f"must be one of {list(SOURCE_KINDS)}", field="source_kind")
        return cls(source_kind=source_kind, source_ref=_text(source_ref, "source_ref", 300),
                   rule_id=_text(rule_id, "rule_id", 64), severity=_text(severity, "severity", 8),
                   region_code=region_code, region_path=dict(region_path),
                   summary=_text(summary, "summary"), evidence=[dict(e) for e in evidence],
                   signers=list(dict.fromkeys(signers)),
                   effective_date=business_date(effective_date),
                   recorded_by=_text(recorded_by, "recorded_by"))

    @event("Raised")
    def __init__(self, source_kind: str, source_ref: str, rule_id: str, severity: str,
                 region_code: str | None, region_path: dict[str, str], summary: str,
                 evidence: list[dict], signers: list[str], effective_date: dt.date,
                 recorded_by: str) -> None:
        self.lead_no = lead_no(self.id)
        self.source_kind, self.source_ref = source_kind, source_ref
        self.rule_id, self.severity = rule_id, severity
        self.region_code, self.region_path = region_code, dict(region_path)
        self.summary = summary
        self.evidence = list(evidence)
        self.signers = list(signers)
        self.raised_on = effective_date
        self.last_on = effective_date
        self.status = "raised"
        self.assignment: dict[str, Any] | None = None
        self.verdict: str | None = None
        self.reasons: str | None = None
        self.disposition: str | None = None
        self.case_no: str | None = None

    # guards -----------------------------------------------------------------------
    def _move(self, effective_date: object, allowed: Sequence[str], what: str) -> dt.date:
        if self.status == "closed":
            raise LeadClosed(f"lead {self.lead_no} is closed", field="lead_id")
        if self.status not in allowed:
            raise StepOutOfOrder(f"{what} comes after {' or '.join(allowed)}; lead "
                                 f"{self.lead_no} is {self.status}", field="step")
        day = business_date(effective_date)
        if day < self.last_on:
            raise InvalidInput(f"is before the lead's last move on {self.last_on}",
                               field="effective_date")
        return day

    # 交办 ---------------------------------------------------------------------------
    def assign(self, *, unit_code: str, official_id: str, working_days: int,
               deadline: dt.date, effective_date: dt.date, recorded_by: str,
               note: str = "") -> bool:
        try:
            oid = str(UUID(str(official_id)))
        except ValueError as exc:
            raise InvalidInput("must be a UUID", field="official_id") from exc
        content = {"unit_code": _text(unit_code, "unit_code", 64), "official_id": oid,
                   "working_days": working_days, "deadline": business_date(deadline, "deadline")}
        if self.status == "assigned" and self.assignment is not None and \
                {k: self.assignment[k] for k in content} == content:
            return False
        day = self._move(effective_date, ("raised",), "交办 (assign)")
        if isinstance(working_days, bool) or not isinstance(working_days, int) or \
                not 1 <= working_days <= 250:
            raise InvalidInput("must be a whole number of working days from 1 to 250",
                               field="working_days")
        if content["deadline"] < day:
            raise InvalidInput("the deadline is before the lead is assigned", field="deadline")
        self._assigned(**content, effective_date=day, note=str(note or ""),
                       recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Assigned")
    def _assigned(self, unit_code: str, official_id: str, working_days: int,
                  deadline: dt.date, effective_date: dt.date, note: str,
                  recorded_by: str) -> None:
        self.assignment = {"unit_code": unit_code, "official_id": official_id,
                           "working_days": working_days, "deadline": deadline,
                           "assigned_on": effective_date}
        self.status = "assigned"
        self.last_on = effective_date

    # 核实 ---------------------------------------------------------------------------
    def verify(self, *, verdict: str, reasons: str, effective_date: dt.date,
               recorded_by: str, evidence: Sequence[Mapping[str, Any]] = (),
               amount_fen: int = 0) -> bool:
        day = self._move(effective_date, ("assigned",), "核实 (verify)")
        items = [dict(e) for e in evidence]
        for i, e in enumerate(items):
            if not isinstance(e.get("kind"), str) or "ref" not in e:
                raise InvalidInput("each piece of evidence is {kind, ref, note}",
                                   field=f"evidence[{i}]")
        self._verified(verdict=_enum(Verdict, verdict, "verdict"),
                       reasons=_text(reasons, "reasons"), evidence=items,
                       amount_fen=_fen(amount_fen, "amount_fen"), effective_date=day,
                       recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Verified")
    def _verified(self, verdict: str, reasons: str, evidence: list[dict], amount_fen: int,
                  effective_date: dt.date, recorded_by: str) -> None:
        self.verdict, self.reasons = verdict, reasons
        self.status = "verified"
        self.last_on = effective_date

    # 反馈 ---------------------------------------------------------------------------
    def report(self, *, report: str, effective_date: dt.date, recorded_by: str) -> bool:
        day = self._move(effective_date, ("verified",), "反馈 (report)")
        self._reported(report=_text(report, "report"), effective_date=day,
                       recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Reported")
    def _reported(self, report: str, effective_date: dt.date, recorded_by: str) -> None:
        self.status = "reported"
        self.last_on = effective_date

    # 审核 ---------------------------------------------------------------------------
    def review(self, *, accepted: bool, opinion: str, effective_date: dt.date,
               recorded_by: str) -> bool:
        day = self._move(effective_date, ("reported",), "审核 (review)")
        if not isinstance(accepted, bool):
            raise InvalidInput("must be true or false", field="accepted")
        self._reviewed(accepted=accepted, opinion=_text(opinion, "opinion"),
                       effective_date=day, recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Reviewed")
    def _reviewed(self, accepted: bool, opinion: str, effective_date: dt.date,
                  recorded_by: str) -> None:
        # sent back: 核实 again under the same assignment
        self.status = "reviewed" if accepted else "assigned"
        self.last_on = effective_date

    # 处置 ---------------------------------------------------------------------------
    def close(self, *, disposition: str, conclusion: str, effective_date: dt.date,
              recorded_by: str, recovered_fen: int = 0, case_no: str | None = None) -> bool:
        if self.status == "closed":
            if self.disposition == disposition and self.case_no == case_no:
                return False
            raise LeadClosed(f"lead {self.lead_no} is closed", field="lead_id")
        day = self._move(effective_date, ("reviewed",), "处置 (close)")
        how = _enum(Disposition, disposition, "disposition")
        if self.verdict == Verdict.UNFOUNDED.value and how != Disposition.CONCLUDED.value:
            raise InvalidInput("an unfounded lead (不属实) is concluded (予以了结)",
                               field="disposition")
        if (how == Disposition.CASE_OPENED.value) != (case_no is not None):
            raise InvalidInput("立案 names its case number, and only 立案 does",
                               field="case_no")
        self._closed(disposition=how, conclusion=_text(conclusion, "conclusion"),
                     recovered_fen=_fen(recovered_fen, "recovered_fen"), case_no=case_no,
                     effective_date=day, recorded_by=_text(recorded_by, "recorded_by"))
        return True

    @event("Closed")
    def _closed(self, disposition: str, conclusion: str, recovered_fen: int,
                case_no: str | None, effective_date: dt.date, recorded_by: str) -> None:
        self.status = "closed"
        self.disposition = disposition
        self.case_no = case_no
        self.last_on = effective_date


# the application-level verbs -------------------------------------------------------------
MOVES = ("assign", "verify", "report", "review", "close")


def raise_lead(app: Any, *, source_kind: str, source_ref: str, rule_id: str, severity: str,
               region_code: str | None, region_path: RegionPath, summary: str,
               evidence: Sequence[Mapping[str, Any]], signers: Sequence[str],
               effective_date: object, recorded_by: str) -> dict[str, Any]:
    """Raise a lead from a flag or a match (``app``: a ``Zhuisu``).  The same evidence
    again: the lead that exists (``recorded`` false); if it was found unfounded (不属实),
    ``LeadUnfounded`` with its reasons."""
    from domain.limits import check_fields, fact_date

    check_fields(source_kind=source_kind, summary=summary, recorded_by=recorded_by)
    day = fact_date(effective_date, "effective_date", app.clock())
    lid = lead_id(str(source_kind), str(source_ref))
    if app.exists(lid):
        lead = app.load(Lead, lid)
        if lead.verdict == Verdict.UNFOUNDED.value:
            raise LeadUnfounded(
                f"this evidence was raised as lead {lead.lead_no} and found unfounded "
                f"(不属实): {lead.reasons}", field="source_ref", lead_id=str(lid),
                lead_no=lead.lead_no, reasons=lead.reasons)
        return {"lead_id": str(lid), "lead_no": lead.lead_no, "recorded": False}
    with app.batch():
        lead = Lead.raise_lead(source_kind=source_kind, source_ref=source_ref,
                               rule_id=rule_id, severity=severity, region_code=region_code,
                               region_path=region_path, summary=summary, evidence=evidence,
                               signers=signers, effective_date=day, recorded_by=recorded_by)
        app._commit(lead)  # noqa: SLF001 - the application's own save (within its batch)
    return {"lead_id": str(lid), "lead_no": lead.lead_no, "recorded": True}


def lead_move(app: Any, lead_ref: UUID | str, move: str, **kwargs: Any) -> dict[str, Any]:
    """One move of a lead: assign (交办), verify (核实), report (反馈), review (审核), close
    (处置; 立案 goes through ``open_lead_case``)."""
    from domain.limits import check_fields, fact_date, plan_date

    if move not in MOVES:
        raise InvalidInput(f"one of {list(MOVES)}", field="step")
    lead = app.load(Lead, lead_ref, "lead_id")
    check_fields(**{k: v for k, v in kwargs.items() if k != "accepted"})
    if "effective_date" in kwargs:
        kwargs["effective_date"] = fact_date(kwargs["effective_date"], "effective_date",
                                             app.clock())
    if "deadline" in kwargs:
        kwargs["deadline"] = plan_date(kwargs["deadline"], "deadline", app.clock())
    if move == "close" and kwargs.get("disposition") == Disposition.CASE_OPENED.value:
        raise InvalidInput("立案 opens a case: use open_lead_case", field="disposition")
    with app.batch():
        recorded = getattr(lead, move)(**kwargs)
        app._commit(lead)  # noqa: SLF001
    return {"lead_id": str(lead.id), "lead_no": lead.lead_no, "recorded": bool(recorded)}


def open_lead_case(app: Any, lead_ref: UUID | str, *, case_no: str, case_type: str,
                   title: str, effective_date: object, conclusion: str, recorded_by: str,
                   subjects: list[dict] | None = None) -> dict[str, Any]:
    """立案 from a lead: the case is opened in the lead's region with the lead's evidence
    (and its flag), then the lead is closed as ``case_opened`` naming the case."""
    from domain.case import EvidenceKind

    lead = app.load(Lead, lead_ref, "lead_id")
    if lead.status != "reviewed":
        raise StepOutOfOrder(f"立案 comes after 审核; lead {lead.lead_no} is {lead.status}",
                             field="step")
    if lead.verdict == Verdict.UNFOUNDED.value:
        raise InvalidInput("an unfounded lead (不属实) is concluded (予以了结)",
                           field="disposition")
    kinds = {k.value for k in EvidenceKind}
    evidence = [{"kind": "document", "ref": f"线索 {lead.lead_no} ({lead.source_kind} "
                                            f"{lead.source_ref})"[:300], "note": lead.summary[:1000]}]
    for e in lead.evidence:
        if e.get("kind") in kinds and e.get("kind") != "flag":
            item = {"kind": e["kind"], "ref": e["ref"], "note": str(e.get("note") or "")}
            if e["kind"] == "payment":
                item["account_id"] = e.get("account_id")
            evidence.append(item)
        elif e.get("kind") == "register":
            evidence.append({"kind": "document", "ref": f"比对数据 {e['ref']}#{e.get('row_no')}",
                             "note": str(e.get("note") or "")})
    region_code = lead.region_code
    if not region_code:
        raise InvalidInput("the lead has no region to open a case in", field="lead_id")
    opened = app.open_case(case_no=case_no, case_type=case_type, title=title,
                           region_code=region_code, effective_date=effective_date,
                           subjects=subjects or [], evidence=evidence,
                           flag_ids=[lead.source_ref] if lead.source_kind == "flag" else [],
                           recorded_by=recorded_by)
    with app.batch():
        recorded = lead.close(disposition=Disposition.CASE_OPENED.value, conclusion=conclusion,
                              effective_date=_day(app, effective_date),
                              recorded_by=recorded_by, case_no=case_no)
        app._commit(lead)  # noqa: SLF001
    return {"lead_id": str(lead.id), "lead_no": lead.lead_no, "case_id": opened["case_id"],
            "recorded": bool(recorded) or opened["recorded"]}


def _day(app: Any, value: object) -> dt.date:
    from domain.limits import fact_date

    return fact_date(value, "effective_date", app.clock())
