"""Poverty-alleviation projects (扶贫项目): county approval, beneficiaries, acceptance (验收)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import event

from domain.errors import InvalidInput, ProjectNotApproved, StepOutOfOrder
from domain.money import PayeeKind, fen, purpose
from domain.positions import STEP_RULES
from domain.region import RegionPath, stable_id
from domain.signed import Authoriser, SignedAggregate, business_date


class Project(SignedAggregate):
    """A project approved by the county (项目审批权限下放到县) with a budget in fen."""

    @staticmethod
    def create_id(project_code: str, **_: object) -> UUID:
        return stable_id("project", project_code)

    @classmethod
    def approve(cls, *, project_code: str, name: str, region_code: str, region_path: RegionPath,
                purpose_code: str, budget_fen: int, effective_date: dt.date,
                beneficiary_household_ids: Sequence[str], authorise: Authoriser) -> Project:
        p = purpose(purpose_code, "purpose_code")
        if PayeeKind.PROJECT not in p.payees:
            raise InvalidInput(f"{purpose_code} is not a project purpose", field="purpose_code")
        if not name:
            raise InvalidInput("must not be empty", field="name")
        content = {"project_code": project_code, "name": name, "region_code": region_code,
                   "purpose_code": purpose_code, "budget_fen": fen(budget_fen, "budget_fen"),
                   "effective_date": business_date(effective_date),
                   "beneficiary_household_ids": [str(h) for h in beneficiary_household_ids]}
        pid = cls.create_id(project_code)
        signatures = authorise(step="Project.Approved", subject=pid, content=content,
                               rule=STEP_RULES["Project.Approved"], region_path=region_path,
                               day=content["effective_date"])
        return cls(**content, region_path=dict(region_path), signatures=signatures)

    @event("Approved")
    def __init__(self, project_code: str, name: str, region_code: str, purpose_code: str,
                 budget_fen: int, effective_date: dt.date, beneficiary_household_ids: list[str],
                 region_path: dict[str, str], signatures: list[dict]) -> None:
        self.code = project_code
        self.name = name
        self.region_code = region_code
        self.region_path = dict(region_path)
        self.purpose_code = purpose_code
        self.budget_fen = budget_fen
        self.approved_on = effective_date
        self.beneficiaries = list(beneficiary_household_ids)
        self.paid_fen = 0
        self.accepted_on: dt.date | None = None
        self._init_accepted("Project.Approved", {
            "project_code": project_code, "name": name, "region_code": region_code,
            "purpose_code": purpose_code, "budget_fen": budget_fen,
            "effective_date": effective_date,
            "beneficiary_household_ids": beneficiary_household_ids})

    def add_beneficiary(self, *, household_id: str, effective_date: dt.date,
                        authorise: Authoriser) -> None:
        c = {"household_id": str(household_id), "effective_date": business_date(effective_date)}
        if self.already_accepted("Project.BeneficiaryAdded", c):
            return
        if c["household_id"] in self.beneficiaries:
            raise InvalidInput("already a beneficiary", field="household_id")
        sig = authorise(step="Project.BeneficiaryAdded", subject=self.id, content=c,
                        rule=STEP_RULES["Project.BeneficiaryAdded"], region_path=self.region_path,
                        day=c["effective_date"])
        self._beneficiary_added(**c, signatures=sig)

    @event("BeneficiaryAdded")
    def _beneficiary_added(self, household_id: str, effective_date: dt.date,
                           signatures: list[dict]) -> None:
        self.beneficiaries.append(household_id)

    def accept_on_completion(self, *, effective_date: dt.date, report: str,
                             authorise: Authoriser) -> None:
        """竣工验收."""
        c = {"effective_date": business_date(effective_date), "report": report}
        if self.already_accepted("Project.AcceptedOnCompletion", c):
            return
        if self.accepted_on is not None:
            raise StepOutOfOrder("the project was already accepted", field="step")
        if not report:
            raise InvalidInput("an acceptance needs a report", field="report")
        if c["effective_date"] < self.approved_on:
            raise InvalidInput("is before the approval", field="effective_date")
        sig = authorise(step="Project.AcceptedOnCompletion", subject=self.id, content=c,
                        rule=STEP_RULES["Project.AcceptedOnCompletion"],
                        region_path=self.region_path, day=c["effective_date"])
        self._accepted_on_completion(**c, signatures=sig)

    @event("AcceptedOnCompletion")
    def _accepted_on_completion(self, effective_date: dt.date, report: str,
                                signatures: list[dict]) -> None:
        self.accepted_on = effective_date

    def check_can_receive(self, day: dt.date, amount: int, purpose_code: str) -> None:
        if day < self.approved_on:
            raise ProjectNotApproved(
                f"project {self.code} was approved on {self.approved_on}, after {day}",
                field="effective_date")
        if purpose_code != self.purpose_code:
            raise InvalidInput(f"project {self.code} is for {self.purpose_code}", field="purpose")
        if self.paid_fen + amount > self.budget_fen:
            raise ProjectNotApproved(
                f"payment would exceed project {self.code}'s approved budget "
                f"({self.paid_fen} + {amount} > {self.budget_fen} fen)", field="amount_fen")

    def record_payment(self, *, movement_id: str, account_id: str, amount_fen: int,
                       effective_date: dt.date) -> None:
        """The paying account's ``Disbursed`` counted against the budget (same transaction)."""
        self._payment_recorded(movement_id=movement_id, account_id=account_id,
                               amount_fen=amount_fen, effective_date=effective_date)

    @event("PaymentRecorded")
    def _payment_recorded(self, movement_id: str, account_id: str, amount_fen: int,
                          effective_date: dt.date) -> None:
        self.paid_fen += amount_fen

    def record_refund(self, *, movement_id: str, of_movement_id: str, amount_fen: int,
                      effective_date: dt.date) -> None:
        """Money recovered or reversed from a project payment frees its budget again."""
        self._refund_recorded(movement_id=movement_id, of_movement_id=of_movement_id,
                              amount_fen=amount_fen, effective_date=effective_date)

    @event("RefundRecorded")
    def _refund_recorded(self, movement_id: str, of_movement_id: str, amount_fen: int,
                         effective_date: dt.date) -> None:
        self.paid_fen -= amount_fen
