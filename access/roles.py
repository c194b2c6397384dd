"""Who may do what, where: the API's roles, what each may do, and its jurisdiction.

This is the one table of the API's authorisation.  A bearer token carries one role and is
bound to one region subtree (its region and everything below it, by region path; or every
region).  The signatures on a step still say who answers for it (谁签字谁负责, checked by
``domain.authorisation``); the role says who may *submit* it, read it or administer.

======================  ====================================================================
role                    may
======================  ====================================================================
``village_official``    read; submit the village's household steps (申请, 民主评议, 核实,
                        公示, 异议, 年度评议, 退出提出/评议/农户确认, 返贫)
``township_reviewer``   read; submit the township's steps (异议处理, 乡镇审核, 帮扶责任人,
                        退出核实, 清退) and project acceptance (验收)
``county_approver``     read; submit county approvals (县级审批, 批准退出) and project
                        approval and beneficiaries (项目审批下放到县)
``fund_officer``        read; submit money movements (``FundAccount.*``: 收到, 下达, 拨付,
                        追回, 冲正)
``inspector``           read; write discipline-inspection cases (纪检监察: open, steps,
                        recovery orders) and record satisfaction surveys; every signed step
                        is refused
``reviewer``            read only
``admin``               read; administer (regions, units, officials, positions, keys,
                        relatives, opening accounts); record satisfaction surveys; read the
                        access log and tokens' use — but not write cases: a case is the
                        discipline commission's decision, recorded under an inspector's name
======================  ====================================================================

Everything is confined to the token's jurisdiction.  The jurisdiction of a command is the
region of its subject aggregate: the household's village, the account's region, the
project's region (for a creation step, the region the content names).

Every read of personal or money data, by any role, is recorded in the access log
(``AUDITED_READERS`` is every role; ``access.reads``): each household, account, project,
official, case, flag, region's figures or log record a route shows is one row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from access.errors import OutsideJurisdiction, RoleNotPermitted


class ApiRole(str, enum.Enum):
    """The role a bearer token is issued for (not to be confused with a signing role)."""

    FUND_OFFICER = "fund_officer"
    VILLAGE_OFFICIAL = "village_official"
    TOWNSHIP_REVIEWER = "township_reviewer"
    COUNTY_APPROVER = "county_approver"
    INSPECTOR = "inspector"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Action(str, enum.Enum):
    READ = "read"  # households, accounts, officials, projects, regions, the step catalogue
    SUBMIT = "submit"  # POST /commands; which steps: STEPS_BY_ROLE
    ADMINISTER = "administer"  # regions, units, officials, positions, keys, relatives, accounts
    READ_ACCESS_LOG = "read_access_log"  # GET /access-log
    WRITE_CASES = "write_cases"  # discipline-inspection cases: open, steps, recovery orders
    RECORD_SURVEYS = "record_surveys"  # 群众满意度调查 of a region


R = ApiRole
VILLAGE_STEPS = frozenset({
    "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
    "Household.NoticePosted", "Household.ObjectionRaised", "Household.AnnualReviewRecorded",
    "Household.ExitProposed", "Household.ExitAppraised", "Household.ExitConfirmedByHousehold",
    "Household.Relapsed",
})
TOWNSHIP_STEPS = frozenset({
    "Household.ObjectionResolved", "Household.ReviewedByTownship", "Household.HelperAssigned",
    "Household.ExitVerifiedByTownship", "Household.RemovedFromRegister",
    "Project.AcceptedOnCompletion",
})
COUNTY_STEPS = frozenset({
    "Household.ApprovedByCounty", "Household.ExitApprovedByCounty", "Project.Approved",
    "Project.BeneficiaryAdded", "Roster.Imported",
})
MONEY_STEPS = frozenset({
    "FundAccount.Received", "FundAccount.Allocated", "FundAccount.Disbursed",
    "FundAccount.Recovered", "FundAccount.Reversed", "FundAccount.BatchOrdered",
    "FundAccount.ReturnsRecorded",
})

# Which signed steps each role may submit (POST /commands).  Every step of the domain is in
# exactly one set (tests/test_api_roles.py keeps it so when a step is added).
STEPS_BY_ROLE: Mapping[ApiRole, frozenset[str]] = {
    R.VILLAGE_OFFICIAL: VILLAGE_STEPS,
    R.TOWNSHIP_REVIEWER: TOWNSHIP_STEPS,
    R.COUNTY_APPROVER: COUNTY_STEPS,
    R.FUND_OFFICER: MONEY_STEPS,
    R.INSPECTOR: frozenset(),
    R.REVIEWER: frozenset(),
    R.ADMIN: frozenset(),
}

_ALL_READ = {Action.READ}
PERMISSIONS: Mapping[ApiRole, frozenset[Action]] = {
    R.VILLAGE_OFFICIAL: frozenset(_ALL_READ | {Action.SUBMIT}),
    R.TOWNSHIP_REVIEWER: frozenset(_ALL_READ | {Action.SUBMIT}),
    R.COUNTY_APPROVER: frozenset(_ALL_READ | {Action.SUBMIT}),
    R.FUND_OFFICER: frozenset(_ALL_READ | {Action.SUBMIT}),
    R.INSPECTOR: frozenset(_ALL_READ | {Action.WRITE_CASES, Action.RECORD_SURVEYS}),
    R.REVIEWER: frozenset(_ALL_READ),
    R.ADMIN: frozenset(_ALL_READ | {Action.ADMINISTER, Action.READ_ACCESS_LOG,
                                    Action.RECORD_SURVEYS}),
}

# Whose reads are recorded in the access log (who looked at what), and of which subjects:
# every role reads personal or money data (officials, fund officers and administrators
# as much as inspectors and reviewers), so every role's reads are recorded; the subjects
# are every kind a route shows (api.deps.record_reads; api.deps.SUBJECT_KINDS).
AUDITED_READERS = frozenset(ApiRole)
AUDITED_SUBJECTS = frozenset({"household", "account", "project", "official", "case", "flag",
                              "region", "unit", "event", "lead"})

_WHY_NOT = {
    R.INSPECTOR: "an inspector reads within its jurisdiction and writes cases only",
    R.REVIEWER: "a reviewer only reads",
    R.ADMIN: "an administrator administers; signed steps are submitted by the officials' "
             "roles",
}
# Why an action is refused to every role that lacks it (before the role's own reason).
_WHY_NOT_ACTION = {
    Action.WRITE_CASES: "cases of discipline inspection (纪检监察) are opened and kept by "
                        "inspectors only, independently of the officials whose steps they "
                        "examine",
    Action.RECORD_SURVEYS: "satisfaction surveys (群众满意度调查) are recorded by inspectors "
                           "and administrators",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id, name, role and jurisdiction (never the token itself)."""

    token_id: str
    name: str
    role: ApiRole
    region_code: str | None  # None: every region
    region_level: str | None

    @property
    def jurisdiction(self) -> str:
        return (f"{self.region_level} {self.region_code}" if self.region_code
                else "every region")

    def covers(self, region_path: Mapping[str, str]) -> bool:
        """Whether a subject at ``region_path`` (level → code) lies in the token's subtree."""
        if self.region_code is None:
            return True
        return region_path.get(self.region_level or "") == self.region_code

    def audited(self, subject_kind: str) -> bool:
        return self.role in AUDITED_READERS and subject_kind in AUDITED_SUBJECTS


def check_may(principal: Principal, action: Action) -> None:
    if action not in PERMISSIONS[principal.role]:
        why = _WHY_NOT_ACTION.get(action) or _WHY_NOT.get(
            principal.role, f"role {principal.role.value} may not {action.value}")
        raise RoleNotPermitted(f"role {principal.role.value} may not {action.value}: {why}",
                               field="Authorization")


def check_may_submit(principal: Principal, step: str) -> None:
    check_may(principal, Action.SUBMIT)
    if step not in STEPS_BY_ROLE[principal.role]:
        who = sorted(r.value for r, steps in STEPS_BY_ROLE.items() if step in steps)
        raise RoleNotPermitted(f"role {principal.role.value} may not submit {step}; "
                               f"it is submitted by {', '.join(who) or 'no role'}", field="step")


def check_covers(principal: Principal, region_path: Mapping[str, str], what: str,
                 field: str | None) -> None:
    if not principal.covers(region_path):
        where = "/".join(region_path.values()) or "no region"
        raise OutsideJurisdiction(
            f"{what} lies in {where}, outside the token's jurisdiction "
            f"({principal.jurisdiction})", field=field)
