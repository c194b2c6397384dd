"""Positions (职务), the responsibility each carries, and which signature roles they grant.

谁签字谁负责: a signature counts only when the signer, on the step's business date, held a
position at the right level of the step's region that grants the signing role for that
area of work (identification 识别退出 or funds 资金).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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


@dataclass(frozen=True)
class StepRule:
    """Which roles must sign a step, and at which level of the subject's region."""

    area: Area
    roles: dict[Role, RegionLevel]


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


def money_rule(level: RegionLevel) -> StepRule:
    """Every money event is signed by 经办, 审核 and 审批 at the account's own level."""
    return StepRule(FU, {P: level, R: level, A: level})
