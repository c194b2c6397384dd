"""Money (资金): integer fen, fund sources and purpose codes with the negative list (负面清单)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from domain.errors import ForbiddenPurpose, InvalidInput


def fen(value: object, field: str = "amount_fen") -> int:
    """Validate an amount in fen (分): a positive integer, never a float or a string."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("must be an integer number of fen (分), not "
                           f"{type(value).__name__}", field=field)
    if value <= 0:
        raise InvalidInput("must be greater than zero", field=field)
    if value > 10**14:
        raise InvalidInput("exceeds 1,000,000,000,000 yuan", field=field)
    return value


def yuan(fen_amount: int) -> str:
    """Display only: 123456 fen → '1,234.56'."""
    sign = "-" if fen_amount < 0 else ""
    y, f = divmod(abs(fen_amount), 100)
    return f"{sign}{y:,}.{f:02d}"


class FundSource(str, enum.Enum):
    """资金来源: 中央 central, 省级 provincial, 市级 city, 县级 county, 行业部门 departmental, 信贷 credit."""

    CENTRAL = "central"
    PROVINCIAL = "provincial"
    CITY = "city"
    COUNTY = "county"
    DEPARTMENTAL = "departmental"
    CREDIT = "credit"


class PayeeKind(str, enum.Enum):
    HOUSEHOLD = "household"  # 到户
    PROJECT = "project"  # 项目
    SUPPLIER = "supplier"  # 供应商 / 施工单位 (always for a project)


@dataclass(frozen=True)
class Purpose:
    code: str
    title: str
    payees: frozenset[PayeeKind]
    allowed_after_exit: bool = False  # 脱贫不脱政策: some aid continues after exit
    negative_list_item: str | None = None  # set: forbidden by 《中央财政专项扶贫资金管理办法》


HH, PRJ, SUP = PayeeKind.HOUSEHOLD, PayeeKind.PROJECT, PayeeKind.SUPPLIER


def _p(code: str, title: str, payees: set[PayeeKind] = frozenset(), after_exit: bool = False,
       forbidden: str | None = None) -> Purpose:
    return Purpose(code, title, frozenset(payees), after_exit, forbidden)


_PURPOSES = [
    _p("special_fund", "财政专项扶贫资金(统筹下达)"),
    _p("hh_industry", "产业扶持到户补助", {HH}),
    _p("hh_education", "教育资助(雨露计划)", {HH}, after_exit=True),
    _p("hh_medical", "健康扶贫医疗救助", {HH}, after_exit=True),
    _p("hh_housing", "危房改造补助", {HH}),
    _p("hh_employment", "就业务工补助", {HH}, after_exit=True),
    _p("hh_relocation", "易地扶贫搬迁补助", {HH}),
    _p("hh_microcredit_interest", "扶贫小额信贷贴息", {HH}, after_exit=True),
    _p("prj_village_infrastructure", "村内道路等小型基础设施", {PRJ, SUP}),
    _p("prj_drinking_water", "农村安全饮水工程", {PRJ, SUP}),
    _p("prj_industry", "产业扶贫项目", {PRJ, SUP}),
    _p("prj_training", "贫困劳动力技能培训", {PRJ, SUP}),
    _p("admin_expenses", "行政事业单位基本支出", forbidden="行政事业单位基本支出"),
    _p("vehicles_equipment", "交通工具及通讯设备", forbidden="交通工具及通讯设备"),
    _p("bonuses_allowances", "奖金、津贴和福利补助", forbidden="各种奖金、津贴和福利补助"),
    _p("enterprise_losses", "弥补企业亏损", forbidden="弥补企业亏损"),
    _p("office_buildings", "楼堂馆所及职工住宅", forbidden="修建楼堂馆所及职工住宅"),
    _p("budget_gaps_debt", "弥补预算缺口和偿还债务", forbidden="弥补预算支出缺口和偿还债务"),
    _p("large_construction", "大中型基本建设项目", forbidden="大中型基本建设项目"),
    _p("urban", "城市基础设施和城市扶贫", forbidden="城市基础设施建设和城市扶贫"),
    _p("unrelated", "与脱贫攻坚无关的支出", forbidden="其他与脱贫攻坚无关的支出"),
]
PURPOSES: dict[str, Purpose] = {p.code: p for p in _PURPOSES}


def purpose(code: object, field: str = "purpose") -> Purpose:
    """Look a purpose code up and refuse a use on the negative list at the door."""
    p = PURPOSES.get(code) if isinstance(code, str) else None
    if p is None:
        raise InvalidInput(f"unknown purpose code; one of {sorted(PURPOSES)}", field=field)
    if p.negative_list_item:
        raise ForbiddenPurpose(
            f"poverty funds may not pay for {p.negative_list_item} "
            "(负面清单, 中央财政专项扶贫资金管理办法 art. 12)", field=field, purpose=p.code)
    return p
