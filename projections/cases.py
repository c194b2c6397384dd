"""Cases of discipline inspection (纪检监察) as read models: tables prefixed ``case_``.

One row per case (status open → rectified → closed, type, region path, dates, suspended
policies), with its persons under review (一案双查: ``basis`` subject or oversight, and
why), evidence, findings, accountability actions (问责, queryable per official), recovery
orders (追回) with their lines and the signers charged, rectification items (整改) with
deadline, unit and official, policy suspensions of villages, satisfaction surveys
(群众满意度) and the log clock (the greatest business date seen).

**Recovery reconciles to the fen.**  Every payment (``FundAccount.Disbursed``) keeps what
came back of it (``Recovered``, a ``PaymentReturned`` by the bank (退回) and, as the money
is back too, a ``Reversed`` of what was
left), with log positions.  Each case's order lines on one payment are covered first in,
first out by what came back *after* the order; what came back *before* it covers the
order only where the order names more than the log says was still out at that point —
the order only names what was still out, so that money must have come back after the
order was decided (the case and the account stored in one transaction, the account's
events first).  A payment's lines are settled again from these facts whenever one of
them arrives, so the result does not depend on which of two aggregates stored together
comes first.  Outstanding per official is the line's outstanding amount split by
``domain.case.split_liability`` — the shares of a line always add up to the line.
The queries (``case_view``, ``list_cases``, ``outstanding_recovery``, ``official_actions``,
``rectification_items``, …) are in ``projections.case_queries``, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import JSON, BigInteger, Column, Date, Index, Integer, String, Table, Text

from domain.application import STEPS
from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.tracking import metadata

LEVELS = ("province", "city", "county", "township", "village")
MONEY_BACK = ("FundAccount.Recovered", "FundAccount.Reversed", "FundAccount.PaymentReturned")
BACK_KIND = {"FundAccount.Recovered": "recovered", "FundAccount.Reversed": "reversed",
             "FundAccount.PaymentReturned": "returned"}


def _path_columns() -> list[Column]:
    return [Column(level, String(32)) for level in LEVELS]


cases = Table(
    "case_cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("case_type", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("region_code", String(32), nullable=False),
    *_path_columns(),
    Column("status", String(16), nullable=False),  # open | rectified | closed
    Column("opened_on", Date, nullable=False),
    Column("incident_date", Date, nullable=False),
    Column("rectified_on", Date),
    Column("closed_on", Date),
    Column("summary", Text),  # of the rectification (整改情况)
    Column("conclusion", Text),  # of the closing (结案)
    Column("suspend_policies", JSON, nullable=False),
    Column("flag_ids", JSON, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("last_on", Date, nullable=False),  # business date of its latest step
    Column("evidence_count", Integer, nullable=False),
    Column("actions_count", Integer, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)
Index("case_cases_no", cases.c.case_no, unique=True)
Index("case_cases_position", cases.c.log_position)

persons = Table(
    "case_persons", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("official_id", String(36), primary_key=True),
    Column("basis", String(16), nullable=False),  # subject | oversight (一案双查)
    Column("reason", Text, nullable=False),
    Column("region_code", String(32)),
    Column("position", Text),
    Column("added_on", Date, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)
Index("case_persons_official", persons.c.official_id)

evidence = Table(
    "case_evidence", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("ref", Text, nullable=False),  # log position, id, flag id or document reference
    Column("account_id", String(36)),  # of a payment
    Column("note", Text, nullable=False),
    Column("linked_on", Date, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)
Index("case_evidence_ref", evidence.c.kind, evidence.c.ref)

findings = Table(
    "case_findings", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("finding_id", Text, primary_key=True),
    Column("text", Text, nullable=False),
    Column("amount_fen", BigInteger),
    Column("recorded_on", Date, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

actions = Table(
    "case_actions", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("official_id", String(36), nullable=False),
    Column("action", String(32), nullable=False),
    Column("decision_no", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("imposed_on", Date, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)
Index("case_actions_official", actions.c.official_id)

orders = Table(
    "case_orders", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("total_fen", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("ordered_on", Date, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("lines_count", Integer, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

lines = Table(
    "case_order_lines", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("movement_id", String(36), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # ordered back
    Column("recovered_fen", BigInteger, nullable=False),  # of it, come back (settled)
    Column("purpose", String(48)),
    Column("payee_kind", String(16)),
    Column("payee_id", String(64)),
    Column("liable", JSON, nullable=False),  # [{official_id, role, share_fen}] (split_liability)
    Column("log_position", BigInteger, nullable=False),  # of the order
)
Index("case_order_lines_payment", lines.c.account_id, lines.c.movement_id)

payments = Table(
    "case_payments", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("amount_fen", BigInteger),  # None until its Disbursed is seen (stored after an order)
    Column("paid_on", Date),
    Column("returns", JSON, nullable=False),  # [[log position, fen, kind, date], …] came back
    Column("lines", JSON, nullable=False),  # [[case id, order id, line no], …] ordering it back
    sqlite_with_rowid=False,
)

items = Table(
    "case_items", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("problem", Text, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("official_id", String(36), nullable=False),
    Column("added_on", Date, nullable=False),
    Column("completed_on", Date),
    Column("completion_evidence", Text),
    Column("log_position", BigInteger, nullable=False),
)
Index("case_items_deadline", items.c.completed_on, items.c.deadline)

suspensions = Table(
    "case_suspensions", metadata,
    Column("region_code", String(32), primary_key=True),
    Column("case_id", String(36), primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("suspended_on", Date, nullable=False),
    Column("resumed_on", Date),
)

surveys = Table(
    "case_surveys", metadata,
    Column("region_code", String(32), primary_key=True),
    Column("survey_id", Text, primary_key=True),
    Column("level", String(16), nullable=False),
    *_path_columns(),
    Column("year", Integer, nullable=False),
    Column("surveyed", Integer, nullable=False),
    Column("satisfied", Integer, nullable=False),
    Column("surveyed_on", Date, nullable=False),
    Column("recorded_by", Text, nullable=False),
)

regions = Table(  # region aggregate id → code and path (region events name only the id)
    "case_regions", metadata,
    Column("region_id", String(36), primary_key=True),
    Column("code", String(32), nullable=False),
    Column("name", Text, nullable=False),
    Column("level", String(16), nullable=False),
    *_path_columns(),
)
Index("case_regions_code", regions.c.code, unique=True)

clock = Table(  # the log clock: the greatest business date seen so far
    "case_clock", metadata,
    Column("name", String(16), primary_key=True),
    Column("day", Date, nullable=False),
)


def path_of(path: dict[str, str]) -> dict[str, str | None]:
    return {level: path.get(level) for level in LEVELS}


def settle(payment: Row, found: list[Row]) -> None:
    """Set ``recovered_fen`` of each order line on ``payment`` (see the module docstring).

    ``found`` are the payment's lines, over every case; each case's lines form their own
    queue, covered first in, first out, by the money that came back.
    """
    by_case: dict[str, list[Row]] = {}
    for line in sorted(found, key=lambda r: (r["log_position"], r["order_id"], r["line_no"])):
        by_case.setdefault(line["case_id"], []).append(line)
    back = sorted((int(p), int(fen)) for p, fen, *_ in payment["returns"])
    paid = payment["amount_fen"]
    for queue_lines in by_case.values():
        left = {id(line): line["amount_fen"] for line in queue_lines}
        opened: list[Row] = []
        seen_back = unattached = 0
        steps = [(p, 0, fen) for p, fen in back] + [(line["log_position"], 1, line)
                                                     for line in queue_lines]
        for _, kind, what in sorted(steps, key=lambda s: (s[0], s[1])):
            if kind == 0:  # money came back: to the open lines, oldest first
                seen_back += what
                unattached += what - _cover(opened, left, what)
                continue
            opened.append(what)
            if paid is None:
                continue
            named = sum(left[id(line)] for line in opened)
            excess = named - (paid - seen_back)  # named more than was still out: came back since
            if excess > 0 and unattached > 0:
                unattached -= _cover(opened, left, min(excess, unattached))
        for line in queue_lines:
            line["recovered_fen"] = line["amount_fen"] - left[id(line)]


def _cover(opened: list[Row], left: dict[int, int], fen: int) -> int:
    """Cover ``fen`` of the open lines, oldest first; returns what was used."""
    used = 0
    for line in opened:
        take = min(left[id(line)], fen - used)
        left[id(line)] -= take
        used += take
        if used == fen:
            break
    return used


class Cases(Projection):
    name = "cases"
    version = 2  # 2: bank returns (PaymentReturned) come back like recoveries
    tables = (cases, persons, evidence, findings, actions, orders, lines, payments, items,
              suspensions, surveys, regions, clock)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(payments, {(e.originator_id, e["movement_id"]) for e in events
                             if e.step == "FundAccount.Disbursed"}
                  | {(e.originator_id, e["of_movement_id"]) for e in events
                     if e.step in MONEY_BACK})

    def handle(self, event: Event, rows: Rows) -> None:
        day = event.data.get("effective_date")
        if day is not None:
            now = rows.get(clock, "log")
            if now is None:
                rows.insert(clock, {"name": "log", "day": day})
            elif day > now["day"]:
                now["day"] = day
                rows.changed(clock, now)
        super().handle(event, rows)

    @handles(*(s for s in STEPS if s != "FundAccount.Disbursed" and s not in MONEY_BACK),
             "Official.KeyRotated", "Official.KeyRevoked")
    def tick(self, e: Event, rows: Rows) -> None:
        """Any other dated step only moves the log clock (``handle``)."""

    # regions, suspensions, surveys ------------------------------------------------------
    @handles("Region.Created")
    def region_created(self, e: Event, rows: Rows) -> None:
        rows.insert(regions, {"region_id": e.originator_id, "code": e["code"],
                              "name": e["name"], "level": e["level"], **path_of(e["path"])})

    @handles("Region.PolicySuspended")
    def suspended(self, e: Event, rows: Rows) -> None:
        region = rows.need(regions, e.originator_id)
        rows.insert(suspensions, {"region_code": region["code"], "case_id": e["case_id"],
                                  "case_no": e["case_no"], "purposes": list(e["purposes"]),
                                  "suspended_on": e.day, "resumed_on": None})

    @handles("Region.PolicyResumed")
    def resumed(self, e: Event, rows: Rows) -> None:
        region = rows.need(regions, e.originator_id)
        s = rows.need(suspensions, region["code"], e["case_id"])
        s["resumed_on"] = e.day
        rows.changed(suspensions, s)

    @handles("Region.SatisfactionSurveyed")
    def surveyed(self, e: Event, rows: Rows) -> None:
        region = rows.need(regions, e.originator_id)
        rows.insert(surveys, {"region_code": region["code"], "survey_id": e["survey_id"],
                              "level": region["level"],
                              **{level: region[level] for level in LEVELS},
                              "year": e["year"], "surveyed": e["surveyed"],
                              "satisfied": e["satisfied"], "surveyed_on": e.day,
                              "recorded_by": e["recorded_by"]})

    # the case ---------------------------------------------------------------------------
    @handles("Case.Opened")
    def opened(self, e: Event, rows: Rows) -> None:
        case = rows.insert(cases, {
            "case_id": e.originator_id, "case_no": e["case_no"], "case_type": e["case_type"],
            "title": e["title"], "region_code": e["region_code"], **path_of(e["region_path"]),
            "status": "open", "opened_on": e.day, "incident_date": e["incident_date"],
            "rectified_on": None, "closed_on": None, "summary": None, "conclusion": None,
            "suspend_policies": list(e["suspend_policies"]), "flag_ids": list(e["flag_ids"]),
            "recorded_by": e["recorded_by"], "last_on": e.day, "evidence_count": 0,
            "actions_count": 0, "log_position": e.position})
        for p in e["persons"]:
            self._person(e, rows, p)
        self._evidence(e, rows, case, e["evidence"])

    def _case(self, e: Event, rows: Rows) -> Row:
        case = rows.need(cases, e.originator_id)
        if e.day > case["last_on"]:
            case["last_on"] = e.day
        rows.changed(cases, case)
        return case

    @staticmethod
    def _person(e: Event, rows: Rows, p: dict) -> None:
        rows.insert(persons, {"case_id": e.originator_id, "official_id": p["official_id"],
                              "basis": p["basis"], "reason": p["reason"],
                              "region_code": p.get("region_code"), "position": p.get("position"),
                              "added_on": e.day, "log_position": e.position})

    @staticmethod
    def _evidence(e: Event, rows: Rows, case: Row, found: Iterable[dict]) -> None:
        for item in found:
            rows.insert(evidence, {"case_id": e.originator_id, "seq": case["evidence_count"],
                                   "kind": item["kind"], "ref": str(item["ref"]),
                                   "account_id": item.get("account_id"),
                                   "note": item.get("note") or "", "linked_on": e.day,
                                   "log_position": e.position})
            case["evidence_count"] += 1

    @handles("Case.EvidenceLinked")
    def evidence_linked(self, e: Event, rows: Rows) -> None:
        case = self._case(e, rows)
        self._evidence(e, rows, case, [e.data])

    @handles("Case.PersonAdded")
    def person_added(self, e: Event, rows: Rows) -> None:
        self._case(e, rows)
        self._person(e, rows, e.data)

    @handles("Case.FindingRecorded")
    def finding_recorded(self, e: Event, rows: Rows) -> None:
        self._case(e, rows)
        rows.insert(findings, {"case_id": e.originator_id, "finding_id": e["finding_id"],
                               "text": e["text"], "amount_fen": e.get("amount_fen"),
                               "recorded_on": e.day, "log_position": e.position})

    @handles("Case.AccountabilityImposed")
    def accountability_imposed(self, e: Event, rows: Rows) -> None:
        case = self._case(e, rows)
        rows.insert(actions, {"case_id": e.originator_id, "seq": case["actions_count"],
                              "official_id": e["official_id"], "action": e["action"],
                              "decision_no": e["decision_no"], "reason": e["reason"],
                              "imposed_on": e.day, "recorded_by": e["recorded_by"],
                              "log_position": e.position})
        case["actions_count"] += 1

    @handles("Case.RectificationItemAdded")
    def item_added(self, e: Event, rows: Rows) -> None:
        self._case(e, rows)
        rows.insert(items, {"case_id": e.originator_id, "item_id": e["item_id"],
                            "problem": e["problem"], "deadline": e["deadline"],
                            "unit_code": e["unit_code"], "official_id": e["official_id"],
                            "added_on": e.day, "completed_on": None,
                            "completion_evidence": None, "log_position": e.position})

    @handles("Case.RectificationItemCompleted")
    def item_completed(self, e: Event, rows: Rows) -> None:
        self._case(e, rows)
        item = rows.need(items, e.originator_id, e["item_id"])
        item["completed_on"], item["completion_evidence"] = e.day, e["evidence"]
        rows.changed(items, item)

    @handles("Case.Rectified")
    def rectified(self, e: Event, rows: Rows) -> None:
        case = self._case(e, rows)
        case.update(status="rectified", rectified_on=e.day, summary=e["summary"])

    @handles("Case.Closed")
    def closed(self, e: Event, rows: Rows) -> None:
        case = self._case(e, rows)
        case.update(status="closed", closed_on=e.day, conclusion=e["conclusion"])

    # 追回 ---------------------------------------------------------------------------------
    @handles("Case.RecoveryOrdered")
    def recovery_ordered(self, e: Event, rows: Rows) -> None:
        self._case(e, rows)
        rows.insert(orders, {"case_id": e.originator_id, "order_id": e["order_id"],
                             "total_fen": e["total_fen"], "reason": e["reason"],
                             "rule": e["rule"], "ordered_on": e.day,
                             "recorded_by": e["recorded_by"], "lines_count": len(e["payments"]),
                             "log_position": e.position})
        for n, p in enumerate(e["payments"]):
            rows.insert(lines, {
                "case_id": e.originator_id, "order_id": e["order_id"], "line_no": n,
                "account_id": p["account_id"], "movement_id": p["movement_id"],
                "amount_fen": p["amount_fen"], "recovered_fen": 0, "purpose": p.get("purpose"),
                "payee_kind": p.get("payee_kind"), "payee_id": p.get("payee_id"),
                "liable": p["liable"], "log_position": e.position})
            payment = self._payment(rows, p["account_id"], p["movement_id"])
            payment["lines"] = [*payment["lines"], [e.originator_id, e["order_id"], n]]
            self._settle(rows, payment)

    @staticmethod
    def _payment(rows: Rows, account_id: str, movement_id: str) -> Row:
        payment = rows.get(payments, account_id, movement_id)
        if payment is None:  # the order was stored before the payment (one transaction)
            payment = rows.insert(payments, {"account_id": account_id, "movement_id": movement_id,
                                             "amount_fen": None, "paid_on": None, "returns": [],
                                             "lines": []})
        rows.changed(payments, payment)
        return payment

    @staticmethod
    def _settle(rows: Rows, payment: Row) -> None:
        if not payment["lines"]:
            return
        found = [rows.need(lines, *key) for key in payment["lines"]]
        settle(payment, found)
        for line in found:
            rows.changed(lines, line)

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        payment = self._payment(rows, e.originator_id, e["movement_id"])
        payment.update(amount_fen=e["amount_fen"], paid_on=e.day)
        self._settle(rows, payment)

    @handles(*MONEY_BACK)
    def money_back(self, e: Event, rows: Rows) -> None:
        payment = rows.get(payments, e.originator_id, e["of_movement_id"])
        if payment is None:  # a reversal of a receipt or an allocation: not a payment
            return
        kind = BACK_KIND[e.step]
        payment["returns"] = [*payment["returns"],
                              [e.position, e["amount_fen"], kind, e.day.isoformat()]]
        rows.changed(payments, payment)
        self._settle(rows, payment)
