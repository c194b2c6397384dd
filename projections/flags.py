"""Red flags (问题线索): every rule of ``audit.rules`` kept up to date event by event.

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

The **log clock** is the greatest business date seen so far (``audit.rules``); when it
moves, idle funds and overdue rectification items are looked for, by index, only once
the clock passes a lower bound kept with it.  The thresholds are ``RuleSettings``; their
digest is part of ``version``, so changed thresholds rebuild the flags from position 0.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    String,
    Table,
    Text,
    and_,
    false,
    func,
    or_,
    select,
)

from audit.rules import (
    EXITED,
    REGISTERED,
    REMOVED,
    RULE_IDS,
    RULES,
    RuleSettings,
    backdated_by,
    completed_split,
    failing_review,
    is_idle,
    payment_rule,
    period_key,
    purpose_title,
    record_day,
    relapsed_soon,
    status_on,
)
from domain.errors import InvalidInput, NotFound
from domain.household import INCOME_LINES_FEN
from domain.money import yuan
from projections import fifo
from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.queries import Db, connected, plain
from projections.store import metadata

LEVELS = ("province", "city", "county", "township", "village")

flags = Table(
    "flags", metadata,
    Column("flag_id", Text, primary_key=True),
    Column("rule_id", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("region_code", String(32)),
    Column("region_path", JSON, nullable=False),
    *[Column(level, String(32)) for level in LEVELS],  # region_path, searchable by level
    Column("effective_date", Date),
    Column("log_position", BigInteger, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("signers", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("explanation_zh", Text, nullable=False),
    Column("explanation_en", Text, nullable=False),
    Column("withdrawn_position", BigInteger),  # None: standing
)
Index("flags_rule", flags.c.rule_id, flags.c.flag_id)
Index("flags_subject", flags.c.subject_id)
Index("flags_date", flags.c.effective_date)
for _level in LEVELS:
    Index(f"flags_{_level}", flags.c[_level])

flag_signers = Table(  # who signed what a flag questions: an official's liability view
    "flag_signers", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("flag_id", Text, primary_key=True),
)

clock = Table(
    "flag_clock", metadata,
    Column("name", String(8), primary_key=True),
    Column("day", Date),  # the log clock
    Column("idle_bound", Date),  # ≤ idle_since of every account not yet flagged
    Column("due_bound", Date),  # ≤ deadline of every open rectification item not yet flagged
)

accounts = Table(
    "flag_accounts", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("region_path", JSON, nullable=False),
    Column("lots", JSON, nullable=False),  # open FIFO lots (projections.fifo)
    Column("idle_since", Date),
    Column("idle_flagged", Boolean, nullable=False),
)
Index("flag_accounts_idle", accounts.c.idle_flagged, accounts.c.idle_since,
      info={"handlers_need": True})

movements = Table(
    "flag_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("payee_kind", String(16)),
    Column("payee_id", Text),
    Column("project_id", String(36)),  # a supplier's
    Column("purpose", String(48), nullable=False),
    Column("effective_date", Date, nullable=False),
)

households = Table(
    "flag_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", Text),  # None until its application is seen
    Column("region_path", JSON),
    Column("applied_position", BigInteger),
    Column("members", JSON, nullable=False),  # [[id hash, name], …]
    Column("registered", Boolean, nullable=False),  # county approval seen
    Column("id_signers", JSON, nullable=False),  # identification: {official: [[pos, date]]}
    Column("transitions", JSON, nullable=False),  # [[date ISO, status, position], …]
    Column("payments", JSON, nullable=False),  # in log order; see ``Flags.disbursed``
    Column("reviews", JSON, nullable=False),  # [[year, date ISO, position, income fen], …]
    Column("exit_year", BigInteger),
    Column("exit_line_fen", BigInteger),
    Column("last_exit", JSON),  # [date ISO, position, [signer, …]]
)

members = Table(
    "flag_members", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("household_id", String(36), primary_key=True),
)

bank_accounts = Table(
    "flag_bank_accounts", metadata,
    Column("bank_account_hash", Text, primary_key=True),
    Column("household_id", String(36), nullable=False),  # the first household with it
    Column("code", Text, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

officials = Table(
    "flag_officials", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("code", Text, nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("relatives", JSON, nullable=False),  # {id hash: relation}
)
Index("flag_officials_id_hash", officials.c.id_hash, info={"handlers_need": True})

pairs = Table(  # preparer and approver of every signed step that has both
    "flag_pairs", metadata,
    Column("preparer_id", String(36), primary_key=True),
    Column("approver_id", String(36), primary_key=True),
    Column("log_position", BigInteger, primary_key=True),
    Column("step", String(48), nullable=False),
    Column("originator_id", String(36), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("movement_id", String(36)),  # of a payment
    Column("effective_date", Date, nullable=False),
    Column("signers", Text, nullable=False),  # official ids, space-separated
)

split_groups = Table(  # payments below the threshold to a project or supplier, by
    "flag_split_groups", metadata,  # account, payee and purpose (a household's: its row)
    Column("group_key", Text, primary_key=True),  # account|payee kind|payee|purpose
    Column("payments", JSON, nullable=False),  # as households.payments
)

projects = Table(
    "flag_projects", metadata,
    Column("project_id", String(36), primary_key=True),
    Column("region_path", JSON, nullable=False),
)

cases = Table(
    "flag_cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("region_path", JSON, nullable=False),
)

rectification = Table(
    "flag_rectification", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("region_path", JSON, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("official_id", String(36), nullable=False),
    Column("added_position", BigInteger, nullable=False),
    Column("completed_on", Date),
    Column("flagged", Boolean, nullable=False),
)
Index("flag_rectification_due", rectification.c.flagged, rectification.c.deadline,
      info={"handlers_need": True})

HOUSEHOLD_STEPS = (
    "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
    "Household.NoticePosted", "Household.ObjectionRaised", "Household.ObjectionResolved",
    "Household.ReviewedByTownship", "Household.ApprovedByCounty", "Household.HelperAssigned",
    "Household.AnnualReviewRecorded", "Household.ExitProposed", "Household.ExitAppraised",
    "Household.ExitConfirmedByHousehold", "Household.ExitVerifiedByTownship",
    "Household.ExitApprovedByCounty", "Household.RemovedFromRegister", "Household.Relapsed")
TRANSITIONS = {"Household.ApprovedByCounty": REGISTERED,
               "Household.ExitApprovedByCounty": EXITED,
               "Household.RemovedFromRegister": REMOVED, "Household.Relapsed": REGISTERED}
CLOCK_ONLY = (  # read only for their business date (the log clock)
    "Case.EvidenceLinked", "Case.PersonAdded", "Case.FindingRecorded",
    "Case.AccountabilityImposed", "Case.RecoveryOrdered", "Case.Rectified", "Case.Closed",
    "Region.PolicySuspended", "Region.PolicyResumed", "Region.SatisfactionSurveyed")


class Flags(Projection):
    name = "flags"
    LAYOUT = 6  # change with the tables or the rules' logic
    tables = (flags, flag_signers, clock, accounts, movements, households, members, bank_accounts, officials,
              pairs, split_groups, projects, cases, rectification)

    def __init__(self, settings: RuleSettings | None = None):
        self._settings = settings

    @property
    def settings(self) -> RuleSettings:
        """The thresholds given, else those of the environment (``ZHUISU_FLAG_*``)."""
        if self._settings is None:
            self._settings = RuleSettings.from_env()
        return self._settings

    @property
    def version(self) -> int:  # type: ignore[override]
        """The layout and the thresholds: a change of either rebuilds the flags."""
        return zlib.crc32(f"{self.LAYOUT}:{self.settings.digest()}".encode()) & 0x7FFFFFFF

    # the batch ---------------------------------------------------------------------
    def prefetch(self, events: list[Event], rows: Rows) -> None:
        keys: dict[Table, set[tuple]] = {t: set() for t in self.tables}
        keys[clock].add(("log",))
        for e in events:
            aggregate = e.step.partition(".")[0]
            if aggregate == "FundAccount":
                keys[accounts].add((e.originator_id,))
                if "of_movement_id" in e.data:
                    keys[movements].add((e.originator_id, e["of_movement_id"]))
                if e.step == "FundAccount.Disbursed":
                    kind, payee = e["payee_kind"], e["payee_id"]
                    if kind == "household":
                        keys[households].add((payee,))
                    else:
                        keys[split_groups].add((_key(e.originator_id, kind, payee,
                                                     e["purpose"]),))
                    for project in (payee if kind == "project" else None, e.get("project_id")):
                        if project:
                            keys[projects].add((project,))
            elif aggregate == "Household":
                keys[households].add((e.originator_id,))
                if e.step == "Household.Applied" and e.get("bank_account_hash"):
                    keys[bank_accounts].add((e["bank_account_hash"],))
            elif aggregate == "Project":
                keys[projects].add((e.originator_id,))
            elif aggregate == "Official":
                keys[officials].add((e.originator_id,))
            elif aggregate == "Case":
                keys[cases].add((e.originator_id,))
                if "item_id" in e.data:
                    keys[rectification].add((e.originator_id, e["item_id"]))
            signatures = e.get("signatures")
            if signatures:
                keys[officials].update((s["official_id"],) for s in signatures)
                if backdated_by(e["timestamp"], e.day) > self.settings.backdate_days:
                    keys[flags].add((f"BACKDATED:{_subject(e)[1]}",))
        for table, wanted in keys.items():
            if wanted:
                rows.load(table, wanted)

    def handle(self, event: Event, rows: Rows) -> None:
        """Move the log clock, handle the event, then the rules every signed step meets."""
        handler = self.handlers.get(event.step)
        if handler is None:
            return
        day = event.data.get("effective_date")
        if day is not None:
            self._tick(event, rows, day)
        handler(self, event, rows)
        if event.data.get("signatures"):
            self._signed_step(event, rows)

    # raising and withdrawing -------------------------------------------------------------
    def _raise(self, rows: Rows, e: Event, rule_id: str, subject_id: str, *,
               path: dict | None, evidence: list[dict], signers: list[str], detail: dict,
               values: dict, day: dt.date | None = None, subject_kind: str | None = None) -> None:
        """Raise a flag (again: a no-op while it stands).  ``day``: the business date when
        the triggering event has none (a relative declared)."""
        flag_id = f"{rule_id}:{subject_id}"
        row = rows.get(flags, flag_id)
        if row is not None and row["withdrawn_position"] is None:
            return
        rule = RULES[rule_id]
        zh, en = rule.explain(**values)
        path = dict(path or {})
        new = {"flag_id": flag_id, "rule_id": rule_id, "severity": rule.severity,
               "subject_kind": subject_kind or rule.subject_kind, "subject_id": subject_id,
               "region_code": _deepest(path), "region_path": path,
               **{level: path.get(level) for level in LEVELS},
               "effective_date": e.get("effective_date") or day, "log_position": e.position,
               "evidence": evidence, "signers": list(dict.fromkeys(signers)),
               "detail": detail, "explanation_zh": zh, "explanation_en": en,
               "withdrawn_position": None}
        if row is None:
            rows.insert(flags, new)
        else:
            row.update(new)
            rows.changed(flags, row)
        for official_id in new["signers"]:
            if rows.get(flag_signers, official_id, flag_id) is None:
                rows.insert(flag_signers, {"official_id": official_id, "flag_id": flag_id})

    @staticmethod
    def _withdraw(rows: Rows, e: Event, flag_id: str) -> None:
        row = rows.get(flags, flag_id)
        if row is not None and row["withdrawn_position"] is None:
            row["withdrawn_position"] = e.position
            rows.changed(flags, row)

    # the log clock: idle funds, overdue rectification --------------------------------------
    @staticmethod
    def _clock(rows: Rows) -> Row:
        row = rows.get(clock, "log")
        if row is None:
            row = rows.insert(clock, {"name": "log", "day": None, "idle_bound": None,
                                      "due_bound": None})
        return row

    def _tick(self, e: Event, rows: Rows, day: dt.date) -> None:
        c = self._clock(rows)
        if c["day"] is not None and day <= c["day"]:
            return
        c["day"] = day
        idle_limit = day - dt.timedelta(days=self.settings.idle_days)
        if c["idle_bound"] is not None and c["idle_bound"] < idle_limit:
            a = accounts.c
            rows.flush()
            for account_id in rows.conn.execute(
                    select(a.account_id).where(a.idle_flagged == false(), a.idle_since < idle_limit)
                    .order_by(a.account_id)).scalars().all():
                self._idle(rows, e, rows.need(accounts, account_id), day)
            rows.flush()
            c["idle_bound"] = rows.conn.execute(
                select(func.min(a.idle_since)).where(a.idle_flagged == false())).scalar()
        if c["due_bound"] is not None and c["due_bound"] < day:
            r = rectification.c
            rows.flush()
            for case_id, item_id in rows.conn.execute(
                    select(r.case_id, r.item_id)
                    .where(r.flagged == false(), r.deadline < day, r.completed_on.is_(None))
                    .order_by(r.case_no, r.item_id)).all():
                if e.step == "Case.RectificationItemCompleted" and \
                        (case_id, item_id) == (e.originator_id, e["item_id"]):
                    continue  # judged by its completion date (``item_completed``)
                self._overdue(rows, e, rows.need(rectification, case_id, item_id))
            rows.flush()
            c["due_bound"] = rows.conn.execute(
                select(func.min(r.deadline))
                .where(r.flagged == false(), r.completed_on.is_(None))).scalar()
        rows.changed(clock, c)  # after the flushes above

    def _idle(self, rows: Rows, e: Event, account: Row, day: dt.date) -> None:
        limit = (day - dt.timedelta(days=self.settings.idle_days)).isoformat()
        oldest = account["lots"][0]
        idle = sum(lot[4] - lot[5] for lot in account["lots"] if lot[0] < limit)
        since = account["idle_since"]
        days = (day - since).days
        account["idle_flagged"] = True
        rows.changed(accounts, account)
        self._raise(rows, e, "IDLE_FUNDS", account["account_id"], path=account["region_path"],
                    evidence=[{"kind": "account", "ref": account["account_id"]},
                              {"kind": "event", "ref": oldest[1]}],
                    signers=[],
                    detail={"idle_since": since.isoformat(), "days": days, "clock": day.isoformat(),
                            "idle_fen": idle, "oldest_lot": oldest[3],
                            "idle_days": self.settings.idle_days},
                    values={"amount": yuan(idle), "idle_since": since.isoformat(), "days": days})

    def _overdue(self, rows: Rows, e: Event, item: Row) -> None:
        item["flagged"] = True
        rows.changed(rectification, item)
        done = item["completed_on"]
        self._raise(rows, e, "RECTIFICATION_OVERDUE", f"{item['case_no']}/{item['item_id']}",
                    path=item["region_path"],
                    evidence=[{"kind": "official", "ref": item["official_id"]},
                              {"kind": "event", "ref": item["added_position"]}],
                    signers=[item["official_id"]],
                    detail={"case_id": item["case_id"], "case_no": item["case_no"],
                            "item_id": item["item_id"], "deadline": item["deadline"].isoformat(),
                            "completed_on": done.isoformat() if done else None},
                    values={"case_no": item["case_no"], "item_id": item["item_id"],
                            "deadline": item["deadline"].isoformat(),
                            "state": f"{done.isoformat()}才完成" if done else "尚未完成",
                            "state_en": f"completed {done.isoformat()}" if done
                            else "not completed"})

    # accounts and money ------------------------------------------------------------------
    @handles("FundAccount.Opened")
    def account_opened(self, e: Event, rows: Rows) -> None:
        rows.insert(accounts, {"account_id": e.originator_id, "region_path": e["region_path"],
                               "lots": [], "idle_since": None, "idle_flagged": False})

    @handles("FundAccount.Received", "FundAccount.AllocationReceived", "FundAccount.Recovered")
    def money_in(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows)
        self._lots(e, rows, +1)

    @handles("FundAccount.Allocated", "FundAccount.AllocationReversed")
    def money_out(self, e: Event, rows: Rows) -> None:
        self._movement(e, rows)
        self._lots(e, rows, -1, prefer=e.get("of_movement_id"))

    @handles("FundAccount.Reversed")
    def reversed(self, e: Event, rows: Rows) -> None:
        original = rows.need(movements, e.originator_id, e["of_movement_id"])
        self._movement(e, rows)
        if original["kind"] == "received":  # the receipt's money goes back where it came from
            self._lots(e, rows, -1, prefer=e["of_movement_id"])
            return
        self._lots(e, rows, +1)  # an allocation comes back up, a payment back from its payee
        if original["kind"] == "disbursed":
            self._payment_reversed(e, rows, original)

    def _movement(self, e: Event, rows: Rows) -> None:
        rows.insert(movements, {"account_id": e.originator_id, "movement_id": e["movement_id"],
                                "kind": e.step.partition(".")[2].lower(),
                                "payee_kind": e.get("payee_kind"), "payee_id": e.get("payee_id"),
                                "project_id": e.get("project_id"), "purpose": e["purpose"],
                                "effective_date": e.day})

    def _lots(self, e: Event, rows: Rows, sign: int, prefer: str | None = None) -> None:
        """Money in (a new lot) or out (oldest lots first), then: is the account idle?"""
        account = rows.need(accounts, e.originator_id)
        c = self._clock(rows)
        if sign > 0:
            fifo.add(account["lots"], e.day, e.position, 0, e["movement_id"], e["amount_fen"])
            if not account["idle_flagged"] and (c["idle_bound"] is None or e.day < c["idle_bound"]):
                c["idle_bound"] = e.day
                rows.changed(clock, c)
        else:
            fifo.take(account["lots"], e["amount_fen"], prefer)
        account["idle_since"] = fifo.oldest(account["lots"])
        rows.changed(accounts, account)
        if not account["idle_flagged"] and is_idle(account["idle_since"], c["day"],
                                                   self.settings.idle_days):
            self._idle(rows, e, account, c["day"])

    # payments ------------------------------------------------------------------------
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
        if e["payee_kind"] != "household":
            if below:
                key = _key(e.originator_id, e["payee_kind"], e["payee_id"], e["purpose"])
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
        h["payments"].append(entry)
        rows.changed(households, h)
        self._payment_status(rows, e, h, entry)
        self._payee_related(rows, e, h, entry)

    def _household(self, rows: Rows, household_id: str) -> Row:
        """The household's row; a payment seen before the payee's application makes it."""
        h = rows.get(households, household_id)
        if h is None:
            h = rows.insert(households, {
                "household_id": household_id, "code": None, "region_path": None,
                "applied_position": None, "members": [], "registered": False, "id_signers": {},
                "transitions": [], "payments": [], "reviews": [], "exit_year": None,
                "exit_line_fen": None, "last_exit": None})
        return h

    @staticmethod
    def _payee_path(rows: Rows, account_id: str, kind: str, payee_id: str,
                    project_id: str | None) -> dict:
        """Where a payment went: the payee household's or project's region, else the account's."""
        if kind == "household":
            h = rows.get(households, payee_id)
            if h is not None and h["region_path"]:
                return h["region_path"]
        project = payee_id if kind == "project" else project_id
        if project:
            p = rows.get(projects, project)
            if p is not None:
                return p["region_path"]
        return rows.need(accounts, account_id)["region_path"]

    def _payment_status(self, rows: Rows, e: Event, h: Row, entry: dict) -> None:
        """Raise or withdraw the payment's status flag as the payee's register now reads."""
        paid_on, old = entry["paid_on"], entry["status_rule"]
        rule = payment_rule(status_on(h["transitions"], dt.date.fromisoformat(paid_on)),
                            entry["purpose"])
        if rule == old:
            return
        entry["status_rule"] = rule
        rows.changed(households, h)
        if old is not None:
            self._withdraw(rows, e, f"{old}:{entry['movement_id']}")
        if rule is None:
            return
        before = [t for t in sorted(h["transitions"], key=lambda t: (t[0], t[2]))
                  if t[0] <= paid_on]
        since = before[-1] if before else None
        evidence = [_payment(entry), {"kind": "household", "ref": h["household_id"]},
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
        period = self._period(entry)
        earlier = [p for p in h["payments"] if p["purpose"] == entry["purpose"]
                   and not p["reversed"] and self._period(p) == period]
        if not earlier:
            return
        entry["duplicate"] = True
        self._raise(rows, e, "PAY_DUPLICATE", entry["movement_id"], path=path,
                    evidence=[_payment(entry), _payment(earlier[0]),
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
        """Payments below the approval threshold that together reach it (拆分支付)."""
        s = self.settings
        open_ = [p for p in earlier if p["split"] == "open" and not p["reversed"]
                 and p["account_id"] == entry["account_id"] and p["purpose"] == entry["purpose"]]
        split = completed_split([(p["paid_on"], p["position"], p["amount_fen"]) for p in open_],
                                (entry["paid_on"], entry["position"], entry["amount_fen"]),
                                s.split_window_days, s.approval_threshold_fen)
        if split is None:
            return
        parts = [p for p in open_ if p["position"] in split] + [entry]
        for p in parts:
            p["split"] = "split"
        total = sum(p["amount_fen"] for p in parts)
        self._raise(rows, e, "SPLIT_PAYMENT", entry["movement_id"], path=path,
                    evidence=[*(_payment(p) for p in parts),
                              *({"kind": "event", "ref": p["position"]} for p in parts)],
                    signers=entry["signers"],
                    detail={"account_id": entry["account_id"], "payee_kind": e["payee_kind"],
                            "payee_id": e["payee_id"], "purpose": entry["purpose"],
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
            table, row = split_groups, rows.get(split_groups, _key(
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
        period, standing = self._period(reversed_), 0
        for p in payments:
            if p["purpose"] != reversed_["purpose"] or self._period(p) != period:
                continue
            if p["duplicate"] and (p["reversed"] or standing == 0):
                p["duplicate"] = False
                self._withdraw(rows, e, f"PAY_DUPLICATE:{p['movement_id']}")
            standing += not p["reversed"]

    def _payee_related(self, rows: Rows, e: Event, h: Row, entry: dict,
                       only: str | None = None) -> None:
        """优亲厚友: a signer of the payment declared a member of the payee household."""
        for official_id in entry["signers"]:
            if only is not None and official_id != only:
                continue
            official = rows.get(officials, official_id)
            if official is None or not official["relatives"]:
                continue
            for id_hash, name in h["members"]:
                relation = official["relatives"].get(id_hash)
                if relation is None:
                    continue
                self._raise(rows, e, "PAYEE_RELATIVE_OF_SIGNER", entry["movement_id"],
                            path=h["region_path"], day=dt.date.fromisoformat(entry["paid_on"]),
                            evidence=[_payment(entry),
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

    # households --------------------------------------------------------------------------
    @handles(*HOUSEHOLD_STEPS)
    def household_step(self, e: Event, rows: Rows) -> None:
        h = self._applied(e, rows) if e.step == "Household.Applied" else \
            rows.need(households, e.originator_id)
        if not h["registered"]:
            self._identification_step(e, rows, h)
        step = e.step
        if step == "Household.ExitProposed":
            h["exit_year"], h["exit_line_fen"] = e["year"], e["income_line_fen"]
        elif step == "Household.AnnualReviewRecorded":
            h["reviews"] = [*h["reviews"], [e["year"], e.day.isoformat(), e.position,
                                            e["income_per_capita_fen"]]]
        elif step == "Household.ExitApprovedByCounty":
            self._exit_checks(e, rows, h)
            h["last_exit"] = [e.day.isoformat(), e.position,
                              [s["official_id"] for s in e["signatures"]]]
        elif step == "Household.Relapsed":
            self._relapse(e, rows, h)
        if step in TRANSITIONS:
            h["registered"] = True
            h["transitions"] = [*h["transitions"], [e.day.isoformat(), TRANSITIONS[step],
                                                    e.position]]
            for entry in h["payments"]:
                self._payment_status(rows, e, h, entry)
        rows.changed(households, h)

    def _applied(self, e: Event, rows: Rows) -> Row:
        h = self._household(rows, e.originator_id)
        h.update(code=e["household_code"], region_path=e["region_path"],
                 applied_position=e.position,
                 members=[[m["id_number_hash"], m["name"]] for m in e["members"]])
        for m in e["members"]:
            rows.insert(members, {"id_hash": m["id_number_hash"], "household_id": e.originator_id})
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
        return h

    def _identification_step(self, e: Event, rows: Rows, h: Row) -> None:
        """Note who signed (but as witness) the identification; are they related to it?"""
        signed, day = h["id_signers"], e.day.isoformat()
        for s in e["signatures"]:
            if s["role"] != "witness":
                signed.setdefault(s["official_id"], []).append([e.position, day])
                self._approver_related(rows, e, h, s["official_id"])

    def _approver_related(self, rows: Rows, e: Event, h: Row, official_id: str) -> None:
        official = rows.get(officials, official_id)
        if official is None or not official["relatives"] or official_id not in h["id_signers"]:
            return
        for id_hash, name in h["members"]:
            relation = official["relatives"].get(id_hash)
            if relation is None:
                continue
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
            return

    def _exit_checks(self, e: Event, rows: Rows, h: Row) -> None:
        """Exit approved although the latest annual review fails the exit year's line."""
        year = h["exit_year"]
        if year is None:
            return
        line = h["exit_line_fen"] or INCOME_LINES_FEN.get(year)
        review = failing_review(h["reviews"], year, e.day, line) if line else None
        if review is None:
            return
        self._raise(rows, e, "EXIT_CHECKS_FAILED", e.originator_id, path=h["region_path"],
                    evidence=[{"kind": "household", "ref": e.originator_id},
                              {"kind": "event", "ref": review[2]},
                              {"kind": "event", "ref": e.position}],
                    signers=[s["official_id"] for s in e["signatures"]],
                    detail={"exit_year": year, "line_fen": line, "review_year": review[0],
                            "review_date": review[1], "income_per_capita_fen": review[3],
                            "approved_on": e.day.isoformat()},
                    values={"year": review[0], "income": yuan(review[3]), "line": yuan(line)})

    def _relapse(self, e: Event, rows: Rows, h: Row) -> None:
        if h["last_exit"] is None:
            return
        exited_on, position, signers = h["last_exit"]
        days = (e.day - dt.date.fromisoformat(exited_on)).days
        if not relapsed_soon(dt.date.fromisoformat(exited_on), e.day,
                             self.settings.relapse_window_days):
            return
        self._raise(rows, e, "RELAPSE_SOON", e.originator_id, path=h["region_path"],
                    evidence=[{"kind": "household", "ref": e.originator_id},
                              {"kind": "event", "ref": position},
                              {"kind": "event", "ref": e.position}],
                    signers=signers,
                    detail={"exited_on": exited_on, "relapsed_on": e.day.isoformat(),
                            "days": days, "cause": e["cause"],
                            "window_days": self.settings.relapse_window_days},
                    values={"days": days})

    # officials, projects, cases ----------------------------------------------------------
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

    @handles("Project.Approved")
    def project_approved(self, e: Event, rows: Rows) -> None:
        rows.insert(projects, {"project_id": e.originator_id, "region_path": e["region_path"]})

    @handles("Project.BeneficiaryAdded", "Project.AcceptedOnCompletion", *CLOCK_ONLY)
    def other_step(self, e: Event, rows: Rows) -> None:
        """Signed project steps (backdated? signers related?) and dates for the clock."""

    @handles("Case.Opened")
    def case_opened(self, e: Event, rows: Rows) -> None:
        rows.insert(cases, {"case_id": e.originator_id, "case_no": e["case_no"],
                            "region_path": e["region_path"]})

    @handles("Case.RectificationItemAdded")
    def item_added(self, e: Event, rows: Rows) -> None:
        case = rows.need(cases, e.originator_id)
        item = rows.insert(rectification, {
            "case_id": e.originator_id, "item_id": e["item_id"], "case_no": case["case_no"],
            "region_path": case["region_path"], "deadline": e["deadline"],
            "official_id": e["official_id"], "added_position": e.position,
            "completed_on": None, "flagged": False})
        c = self._clock(rows)
        if c["day"] is not None and e["deadline"] < c["day"]:
            self._overdue(rows, e, item)
        elif c["due_bound"] is None or e["deadline"] < c["due_bound"]:
            c["due_bound"] = e["deadline"]
            rows.changed(clock, c)

    @handles("Case.RectificationItemCompleted")
    def item_completed(self, e: Event, rows: Rows) -> None:
        item = rows.need(rectification, e.originator_id, e["item_id"])
        item["completed_on"] = e.day
        rows.changed(rectification, item)
        if e.day > item["deadline"]:
            if not item["flagged"]:
                self._overdue(rows, e, item)
        elif item["flagged"]:  # completed in time, though the log clock had run past it
            item["flagged"] = False
            self._withdraw(rows, e, f"RECTIFICATION_OVERDUE:{item['case_no']}/{item['item_id']}")

    # every signed step ---------------------------------------------------------------
    def _signed_step(self, e: Event, rows: Rows) -> None:
        """Backdated?  Preparer and approver the same official, or related?"""
        kind, subject = _subject(e)
        signatures = e["signatures"]
        signers = [s["official_id"] for s in signatures]
        days = backdated_by(e["timestamp"], e.day)
        if days > self.settings.backdate_days:
            path = self._step_path(e, rows)
            recorded = record_day(e["timestamp"]).isoformat()
            self._raise(rows, e, "BACKDATED", subject, subject_kind=kind, path=path,
                        evidence=[*_subject_evidence(e), {"kind": "event", "ref": e.position}],
                        signers=signers,
                        detail={"step": e.step, "recorded_on": recorded,
                                "recorded_at": e["timestamp"].isoformat(), "days": days,
                                "backdate_days": self.settings.backdate_days},
                        values={"effective_date": e.day.isoformat(), "recorded_on": recorded,
                                "days": days})
        by_role = {s["role"]: s["official_id"] for s in signatures}
        preparer, approver = by_role.get("preparer"), by_role.get("approver")
        if preparer is None or approver is None:
            return
        pair = rows.insert(pairs, {
            "preparer_id": preparer, "approver_id": approver, "log_position": e.position,
            "step": e.step, "originator_id": e.originator_id, "version": e.version,
            "movement_id": e.get("movement_id") if kind == "payment" else None,
            "effective_date": e.day, "signers": " ".join(signers)})
        if preparer == approver or self._declared(rows, preparer, approver) is not None:
            self._signers_related(rows, e, pair)

    @staticmethod
    def _declared(rows: Rows, preparer: str, approver: str) -> tuple[str, str] | None:
        """(who declared, relation) when one of the two declared the other a relative."""
        p, a = rows.get(officials, preparer), rows.get(officials, approver)
        if p is None or a is None:
            return None
        if a["id_hash"] in p["relatives"]:
            return preparer, p["relatives"][a["id_hash"]]
        if p["id_hash"] in a["relatives"]:
            return approver, a["relatives"][p["id_hash"]]
        return None

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
                    values={"how": "为同一人" if how == "same" else f"互为亲属（{relation}）",
                            "how_en": "are the same official" if how == "same"
                            else f"are related ({relation})",
                            "preparer": codes[preparer], "approver": codes[approver]})

    def _step_path(self, e: Event, rows: Rows) -> dict:
        return self._path_of(rows, e.step, e.originator_id, e.get("movement_id"))

    def _path_of(self, rows: Rows, step: str, originator_id: str,
                 movement_id: str | None) -> dict:
        """Where a signed step happened: its household's or project's region; a payment's
        payee's (see ``_payee_path``); another money step's account's."""
        aggregate = step.partition(".")[0]
        if aggregate == "Household":
            return rows.need(households, originator_id)["region_path"] or {}
        if aggregate == "Project":
            return rows.need(projects, originator_id)["region_path"]
        if step == "FundAccount.Disbursed" and movement_id:
            m = rows.need(movements, originator_id, movement_id)
            return self._payee_path(rows, originator_id, m["payee_kind"], m["payee_id"],
                                    m["project_id"])
        return rows.need(accounts, originator_id)["region_path"]


def _subject(e: Event) -> tuple[str, str]:
    """A payment is named by its movement id, any other step by ``{originator}@{version}``."""
    if e.step == "FundAccount.Disbursed":
        return "payment", e["movement_id"]
    return "step", f"{e.originator_id}@{e.version}"


def _subject_evidence(e: Event) -> list[dict]:
    aggregate = e.step.partition(".")[0]
    if e.step == "FundAccount.Disbursed":
        return [{"kind": "payment", "ref": e["movement_id"], "account_id": e.originator_id}]
    if aggregate == "FundAccount":
        return [{"kind": "account", "ref": e.originator_id}]
    if aggregate == "Household":
        return [{"kind": "household", "ref": e.originator_id}]
    return []


def _payment(entry: dict) -> dict:
    return {"kind": "payment", "ref": entry["movement_id"], "account_id": entry["account_id"]}


def _key(*parts: str) -> str:
    return "|".join(parts)


def _deepest(path: dict) -> str | None:
    for level in reversed(LEVELS):
        if path.get(level):
            return path[level]
    return None


# queries -----------------------------------------------------------------------------
MAX_LIMIT = 1000


def _day(value: dt.date | str | None, field: str) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from None


def _in_region(region_code: str) -> Any:
    """The subtree: ``region_code`` at any level of the path (the flag's own region is its
    deepest level, so one index per level answers it)."""
    return or_(*[flags.c[level] == region_code for level in LEVELS])


def _flag(row: Any) -> dict:
    out = plain({c.name: row[c.name] for c in flags.columns if c.name not in LEVELS})
    out["standing"] = row["withdrawn_position"] is None
    return out


def list_flags(db: Db, *, rule_id: str | None = None, region_code: str | None = None,
               subject_id: str | None = None, severity: str | None = None,
               date_from: dt.date | str | None = None, date_to: dt.date | str | None = None,
               after: str | None = None, limit: int = 100) -> list[dict]:
    """Standing flags, by flag id, after the cursor ``after`` (a flag id), at most ``limit``.

    ``region_code`` matches any level of the flag's region path (the subtree);
    ``date_from``/``date_to`` bound ``effective_date`` (inclusive).
    """
    if rule_id is not None and rule_id not in RULES:
        raise InvalidInput(f"unknown rule; one of {list(RULE_IDS)}", field="rule_id")
    if severity is not None and severity not in ("high", "medium", "low"):
        raise InvalidInput("must be high, medium or low", field="severity")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    first, last = _day(date_from, "date_from"), _day(date_to, "date_to")
    f = flags.c
    q = select(flags).where(f.withdrawn_position.is_(None))
    if rule_id is not None:
        q = q.where(f.rule_id == rule_id)
    if region_code:
        q = q.where(_in_region(region_code))
    if subject_id is not None:
        q = q.where(f.subject_id == str(subject_id))
    if severity is not None:
        q = q.where(f.severity == severity)
    if first is not None:
        q = q.where(f.effective_date >= first)
    if last is not None:
        q = q.where(f.effective_date <= last)
    if after is not None:
        q = q.where(f.flag_id > after)
    with connected(db) as conn:
        return [_flag(r) for r in conn.execute(q.order_by(f.flag_id).limit(limit)).mappings()]


def flags_signed_by(db: Db, official_id: str, *, date_from: dt.date | None = None,
                    date_to: dt.date | None = None, limit: int = 50) -> dict:
    """Standing flags on steps ``official_id`` signed (谁签字谁负责): count by rule, and the
    first ``limit`` by business date."""
    s, f = flag_signers, flags
    where = [s.c.official_id == str(official_id), f.c.withdrawn_position.is_(None)]
    if date_from:
        where.append(f.c.effective_date >= date_from)
    if date_to:
        where.append(f.c.effective_date <= date_to)
    with connected(db) as conn:
        found = [dict(r) for r in conn.execute(
            select(f).join(s, s.c.flag_id == f.c.flag_id).where(*where)
            .order_by(f.c.effective_date, f.c.flag_id)).mappings()]
    found = [r for r in found if str(official_id) in r["signers"]]  # as raised last
    by_rule: dict[str, int] = {}
    for r in found:
        by_rule[r["rule_id"]] = by_rule.get(r["rule_id"], 0) + 1
    return {"count": len(found), "by_rule": by_rule,
            "items": [_flag(r) for r in found[:limit]]}


def get_flag(db: Db, flag_id: str) -> dict:
    """One flag, standing or withdrawn (``standing``, ``withdrawn_position``)."""
    with connected(db) as conn:
        row = conn.execute(select(flags).where(flags.c.flag_id == str(flag_id))
                           ).mappings().first()
    if row is None:
        raise NotFound(f"no flag {flag_id}", field="flag_id")
    return _flag(row)


def flag_counts(db: Db, region_code: str | None = None) -> dict[str, int]:
    """Standing flags per rule (every rule of the catalogue, 0 when none), in a subtree."""
    q = (select(flags.c.rule_id, func.count()).where(flags.c.withdrawn_position.is_(None))
         .group_by(flags.c.rule_id))
    if region_code:
        q = q.where(_in_region(region_code))
    counts = dict.fromkeys(RULE_IDS, 0)
    with connected(db) as conn:
        for rule_id, n in conn.execute(q).all():
            counts[rule_id] = n
    return counts
