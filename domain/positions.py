"""Positions (职务), the responsibility each carries, and which signature roles they grant.

谁签字谁负责: a signature counts only when the signer, on the step's business date, held a
position at the right level of the step's region that grants the signing role for that
area of work (identification 识别退出 or funds 资金).

Who may sign a step is one rule object (``StepRule``): ``domain.authorisation`` checks a
signature against ``StepRule.positions`` and ``GET /steps`` lists ``StepRule.signers``, so
the catalogue and the check cannot disagree.  Procedure steps have a fixed rule
(``STEP_RULES``); money steps are signed at the paying account's own level
(``money_rule``), every account level one rule (``money_rules``).  村账乡代管: a village
keeps no account of its own; its households are paid from the township's account, and the
payment list (发放清册) is prepared by the village's 报账员 (村会计) — so a payment to a
household from a township account may be prepared (经办) by the village accountant of the
payee's village, then reviewed (审核) and approved (审批) at the township.  That signer is
a signer of the payment like any other: the red flags name them (优亲厚友), recovery
charges them (谁签字谁追回).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.region import RegionLevel
from domain.signing import Role


class ResponsibilityKind(str, enum.Enum):
    """第一责任人 first, 直接责任人 direct, 主管/领导责任 leading, 经办责任 handling."""

    FIRST = "first"
    DIRECT = "direct"
    LEADING = "leading"
    HANDLING = "handling"


class Area(str, enum.Enum):
    IDENTIFICATION = "identification"  # 识别、帮扶、退出
    FUNDS = "funds"  # 资金、项目


P, R, A, W = Role.PREPARER, Role.REVIEWER, Role.APPROVER, Role.WITNESS
ID, FU = Area.IDENTIFICATION, Area.FUNDS


@dataclass(frozen=True)
class PositionSpec:
    title: str
    level: RegionLevel
    responsibility: ResponsibilityKind
    grants: dict[Area, frozenset[Role]]


def _spec(title: str, level: RegionLevel, resp: ResponsibilityKind,
          ident: set[Role] = frozenset(), funds: set[Role] = frozenset()) -> PositionSpec:
    return PositionSpec(title, level, resp, {ID: frozenset(ident), FU: frozenset(funds)})


L, F, D, H = (ResponsibilityKind.LEADING, ResponsibilityKind.FIRST,
              ResponsibilityKind.DIRECT, ResponsibilityKind.HANDLING)
PV, CI, CO, TW, VI = list(RegionLevel)

POSITIONS: dict[str, PositionSpec] = {
    "province_poverty_office_director": _spec("省扶贫办主任", PV, L, funds={R, A}),
    "province_finance_director": _spec("省财政厅农业处处长", PV, L, funds={R, A}),
    "province_finance_officer": _spec("省财政厅经办人员", PV, H, funds={P}),
    "city_poverty_office_director": _spec("市扶贫办主任", CI, L, funds={R, A}),
    "city_finance_director": _spec("市财政局局长", CI, L, funds={R, A}),
    "city_finance_officer": _spec("市财政局经办人员", CI, H, funds={P}),
    "county_party_secretary": _spec("县委书记", CO, F, ident={A}, funds={A}),
    "county_magistrate": _spec("县长", CO, F, ident={A}, funds={A}),
    "deputy_county_magistrate": _spec("分管副县长", CO, D, ident={A, R}, funds={A, R}),
    "county_poverty_office_director": _spec("县扶贫办主任", CO, D, ident={R, A}, funds={R}),
    "county_poverty_office_staff": _spec("县扶贫办工作人员", CO, H, ident={P}, funds={P}),
    "county_finance_director": _spec("县财政局局长", CO, L, funds={R, A}),
    "county_finance_officer": _spec("县财政局经办人员", CO, H, funds={P}),
    "township_party_secretary": _spec("乡镇党委书记", TW, F, ident={A}, funds={A}),
    "township_head": _spec("乡镇长", TW, F, ident={A, R}, funds={A, R}),
    "township_poverty_officer": _spec("乡镇扶贫专干", TW, H, ident={P, R}, funds={P}),
    "township_finance_accountant": _spec("乡镇财政所会计", TW, H, funds={P, R}),
    "village_party_secretary": _spec("村党支部书记", VI, F, ident={A, R}, funds={A}),
    "village_director": _spec("村委会主任", VI, D, ident={A, R}, funds={R, A}),
    "village_first_secretary": _spec("驻村第一书记", VI, D, ident={R, A, W}, funds={R}),
    "village_accountant": _spec("村会计(报账员)", VI, H, ident={P, W}, funds={P}),
    "work_team_member": _spec("驻村工作队员", VI, H, ident={P, W}),
}


def position_spec(kind: str) -> PositionSpec:
    return POSITIONS[kind]


@functools.cache
def granting(area: Area, role: Role, level: RegionLevel) -> tuple[str, ...]:
    """The position kinds held at ``level`` that grant ``role`` for ``area``, sorted."""
    return tuple(sorted(kind for kind, spec in POSITIONS.items()
                        if spec.level is level and role in spec.grants[area]))


@dataclass(frozen=True)
class StepRule:
    """Which roles must sign a step, and where.

    ``roles``: every role named is signed exactly once, by an official holding, on the
    step's business date, a position at that level of the subject's region (the region of
    the subject's path at that level) that grants the role for ``area``.  ``also``: further
    levels at which a role may be signed instead (in this order after ``roles``'s).
    """

    area: Area
    roles: Mapping[Role, RegionLevel]
    also: Mapping[Role, tuple[RegionLevel, ...]] = field(default_factory=dict)

    def levels(self, role: Role) -> tuple[RegionLevel, ...]:
        """Where ``role`` may be signed: its level, then the ``also`` levels."""
        return (self.roles[role], *self.also.get(role, ()))

    def positions(self, role: Role, level: RegionLevel) -> tuple[str, ...]:
        """The position kinds that may sign ``role`` at ``level`` (the authoriser's check)."""
        if role not in self.roles or level not in self.levels(role):
            return ()
        return granting(self.area, role, level)

    def signers(self) -> list[tuple[Role, RegionLevel, tuple[str, ...]]]:
        """(role, level, positions) for every role and level: what ``GET /steps`` lists."""
        return [(role, level, self.positions(role, level))
                for role in self.roles for level in self.levels(role)]


def _rule(area: Area, **roles: RegionLevel) -> StepRule:
    return StepRule(area, {Role(k): v for k, v in roles.items()})


STEP_RULES: dict[str, StepRule] = {
    # Identification 精准识别
    "Household.Applied": _rule(ID, preparer=VI),
    "Household.AppraisedByVillage": _rule(ID, preparer=VI, approver=VI),
    "Household.VerifiedByVillage": _rule(ID, reviewer=VI, approver=VI),
    "Household.NoticePosted": _rule(ID, preparer=VI),
    "Household.ObjectionRaised": _rule(ID, preparer=VI),
    "Household.ObjectionResolved": _rule(ID, reviewer=TW),
    "Household.ReviewedByTownship": _rule(ID, preparer=TW, approver=TW),
    "Household.ApprovedByCounty": _rule(ID, preparer=CO, reviewer=CO, approver=CO),
    # 花名册导入: a county vouches for the households it takes from the national register
    "Roster.Imported": _rule(ID, preparer=CO, reviewer=CO, approver=CO),
    "Household.HelperAssigned": _rule(ID, approver=TW),
    "Household.AnnualReviewRecorded": _rule(ID, preparer=VI, reviewer=TW),
    # Exit 脱贫退出
    "Household.ExitProposed": _rule(ID, preparer=VI, approver=VI),
    "Household.ExitAppraised": _rule(ID, preparer=VI, approver=VI),
    "Household.ExitConfirmedByHousehold": _rule(ID, witness=VI),
    "Household.ExitVerifiedByTownship": _rule(ID, preparer=TW, approver=TW),
    "Household.ExitApprovedByCounty": _rule(ID, preparer=CO, reviewer=CO, approver=CO),
    # Removal 清退 and relapse 返贫
    "Household.RemovedFromRegister": _rule(ID, preparer=TW, reviewer=TW, approver=CO),
    "Household.Relapsed": _rule(ID, preparer=VI, reviewer=TW, approver=CO),
    # Projects 扶贫项目 (approval delegated to the county)
    "Project.Approved": _rule(FU, preparer=CO, reviewer=CO, approver=CO),
    "Project.BeneficiaryAdded": _rule(FU, preparer=CO, approver=CO),
    "Project.AcceptedOnCompletion": _rule(FU, preparer=TW, reviewer=CO, approver=CO),
}

MONEY_STEPS = ("Received", "Allocated", "Disbursed", "Recovered", "Reversed")
ACCOUNT_LEVELS = (PV, CI, CO, TW)
"""Accounts are kept from township level up (村账乡代管: the township keeps the villages')."""


def money_rule(level: RegionLevel, payee_kind: str | None = None) -> StepRule:
    """Every money event is signed by 经办, 审核 and 审批 at the account's own level.

    ``payee_kind`` "household" (a ``Disbursed`` to a household): from a township account
    the preparer may instead be the payee's village's 报账员 (村账乡代管, the village
    prepares the 发放清册); the signer's region is then the village of the household's
    path, so the authoriser is given the household's region path.
    """
    also = {P: (VI,)} if level is TW and payee_kind == "household" else {}
    return StepRule(FU, {P: level, R: level, A: level}, also)


def money_rules(step: str) -> list[tuple[dict[str, str], StepRule]]:
    """Every rule the money step ``step`` ('FundAccount.Disbursed') may be signed under,
    with when it applies: ``account_level``, and ``payee_kind`` for a rule that holds for
    payments to that kind of payee only."""
    out: list[tuple[dict[str, str], StepRule]] = []
    for level in ACCOUNT_LEVELS:
        out.append(({"account_level": level.value}, money_rule(level)))
        if step in ("FundAccount.Disbursed", "FundAccount.BatchOrdered"):
            household = money_rule(level, "household")
            if household != out[-1][1]:
                out.append(({"account_level": level.value, "payee_kind": "household"},
                            household))
    return out
