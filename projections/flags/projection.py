"""The flags projection: the families' mixins combined, and which family each event goes to.

``Flags`` keeps its name, tables and version (``LAYOUT`` and the thresholds' digest).  Per
event: the log clock moves first (``_tick``: idle funds, overdue rectification), then the
event's handler, then the rules every signed step meets (``_signed_step``: backdated;
preparer and approver the same official or related).  A household step is shared by
several families (``household_step``): identification (``relations``), exit
(``exits``), register transitions, which the payments already seen are judged again by
(``payments``).
"""

from __future__ import annotations

import datetime as dt
import zlib

from sqlalchemy import Table

from inspection.rules import EXITED, REGISTERED, REMOVED, is_backdated
from projections.events import Event
from projections.flags.base import group_key, subject_of
from projections.flags.batches import BatchFlags
from projections.flags.cases import CaseFlags
from projections.flags.exits import ExitFlags
from projections.flags.funds import FundFlags
from projections.flags.payments import PaymentFlags
from projections.flags.records import RecordFlags
from projections.flags.relations import RelationFlags
from projections.flags.tables import (
    accounts,
    bank_accounts,
    bank_failures,
    cases,
    clock,
    flag_signers,
    flags,
    households,
    members,
    movements,
    officials,
    pairs,
    payees,
    projects,
    rectification,
    split_groups,
)
from projections.projection import Projection, Row, Rows, handles

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


class Flags(PaymentFlags, RelationFlags, FundFlags, RecordFlags, ExitFlags, CaseFlags,
            BatchFlags, Projection):
    name = "flags"
    LAYOUT = 8  # change with the tables or the rules' logic (8: batches, rosters)
    tables = (flags, flag_signers, clock, accounts, movements, households, members,
              bank_accounts, officials, pairs, split_groups, projects, cases, rectification,
              payees, bank_failures)

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
                        if e.get("batch"):
                            keys[payees].add((payee,))
                    else:
                        keys[split_groups].add((group_key(e.originator_id, kind, payee,
                                                          e["purpose"]),))
                    for project in (payee if kind == "project" else None, e.get("project_id")):
                        if project:
                            keys[projects].add((project,))
            elif aggregate == "Household":
                keys[households].add((e.originator_id,))
                if e.step == "Household.Applied":
                    keys[payees].add((e.originator_id,))
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
                if is_backdated(e["timestamp"], e.day, self.settings.backdate_days):
                    keys[flags].add((f"BACKDATED:{subject_of(e)[1]}",))
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

    def _tick(self, e: Event, rows: Rows, day: dt.date) -> None:
        """The log clock: the greatest business date so far; idle funds and overdue
        rectification are looked for when it moves."""
        c = self._clock(rows)
        if c["day"] is not None and day <= c["day"]:
            return
        c["day"] = day
        self._idle_tick(e, rows, c, day)
        self._due_tick(e, rows, c, day)
        rows.changed(clock, c)  # after the flushes above

    def _signed_step(self, e: Event, rows: Rows) -> None:
        """Backdated?  Preparer and approver the same official, or related?"""
        self._backdated(e, rows)
        self._signers_pair(e, rows)

    # households ------------------------------------------------------------------------
    @handles(*HOUSEHOLD_STEPS)
    def household_step(self, e: Event, rows: Rows) -> None:
        h = self._applied(e, rows) if e.step == "Household.Applied" else \
            rows.need(households, e.originator_id)
        if not h["registered"]:
            self._identification_step(e, rows, h)
        self._exit_step(e, rows, h)
        step = e.step
        if step == "Household.Applied":
            self._batch_applied(e, rows, h)
            if e.get("batch"):
                self._imported(e, rows, h, e["batch"])
        if step in TRANSITIONS:
            h["registered"] = True
            h["transitions"] = [*h["transitions"], [e.day.isoformat(), TRANSITIONS[step],
                                                    e.position]]
            for entry in h["payments"]:
                self._payment_status(rows, e, h, entry)
        rows.changed(households, h)

    def _imported(self, e: Event, rows: Rows, h: Row, imported: dict) -> None:
        """A household imported from a roster (花名册) is on the register from its
        effective date, exited from the roster's ``exited_on`` (``domain.household``): its
        transitions, as a county approval's and an exit approval's would be."""
        h["registered"] = True
        h["transitions"] = [*h["transitions"], [e.day.isoformat(), REGISTERED, e.position]]
        if imported.get("exited_on"):
            exited = str(imported["exited_on"])[:10]
            h["transitions"] = [*h["transitions"], [exited, EXITED, e.position]]
            h["last_exit"] = [exited, e.position, [s["official_id"] for s in e["signatures"]]]
        for entry in h["payments"]:
            self._payment_status(rows, e, h, entry)

    def _applied(self, e: Event, rows: Rows) -> Row:
        h = self._household(rows, e.originator_id)
        h.update(code=e["household_code"], region_path=e["region_path"],
                 applied_position=e.position,
                 members=[[m["id_number_hash"], m["name"]] for m in e["members"]])
        for m in e["members"]:
            rows.insert(members, {"id_hash": m["id_number_hash"], "household_id": e.originator_id})
        self._applied_relations(e, rows, h)
        return h

    # projects, and steps read only for the clock ------------------------------------------
    @handles("Project.Approved")
    def project_approved(self, e: Event, rows: Rows) -> None:
        rows.insert(projects, {"project_id": e.originator_id, "region_path": e["region_path"]})

    @handles("Project.BeneficiaryAdded", "Project.AcceptedOnCompletion", *CLOCK_ONLY)
    def other_step(self, e: Event, rows: Rows) -> None:
        """Signed project steps (backdated? signers related?) and dates for the clock."""
