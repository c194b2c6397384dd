"""Comparison models (大数据比对): beneficiaries joined with other departments' registers.

Each model has a stable id, a severity, the register kind it reads (none: the log alone)
and a one-line explanation in Chinese and English.  The join key is the keyed hash of the
ID number (``domain.identity.hash_id_number``): households' members carry it
(``Household.Applied``), the registers' rows carry it (``domain.registers``).

========================================  ==========  ===========================================
model                                     severity    matched when
========================================  ==========  ===========================================
``COMPARE_PAID_AFTER_DEATH``              high        a household payment dated after the death
                                                      (死亡/火化) of one of its members; one
                                                      match per payment and person
``COMPARE_PAYROLL_MEMBER``                high        a member of a registered household is on
                                                      the public payroll (财政供养人员); its
                                                      payments are evidence
``COMPARE_CADRE_RELATIVE``                medium      a member of a registered household is a
                                                      first- or second-degree relative of a
                                                      village cadre (村干部近亲属)
``COMPARE_VEHICLE``                       medium      a member owns a vehicle bought at or above
                                                      ``vehicle_price_fen`` (default 50,000 元)
``COMPARE_COMMERCIAL_HOUSING``            medium      a member owns commercial housing (商品房) of
                                                      at least ``housing_area_m2`` (default 60 m²)
``COMPARE_BUSINESS_OWNER``                medium      a member is the legal representative
                                                      (法定代表人) or a shareholder (股东) of a
                                                      registered business
``COMPARE_DUPLICATE_PERSON``              medium      one person (ID hash) is a member of two
                                                      households (in one village or two)
``COMPARE_DIBAO_CONTRADICTS``             low         the 低保 register shows the member's 低保
                                                      cancelled or stopped (取消/停保/退出) on or
                                                      before the household applied
``COMPARE_DISABILITY_CONTRADICTS``        low         the household gives 因残 (disability) as
                                                      a cause of poverty, yet no member is in
                                                      the disabled persons' register
========================================  ==========  ===========================================

"Registered household": one that has been on the register (county approval seen) — a
match on a household that only applied is not raised until it is registered.  The
answerable signers of a match (谁签字谁负责) are those of the household's identification
(every role but witness) and, for models about money, of the payments in evidence.

The thresholds are ``CompareSettings`` (``ZHUISU_COMPARE_VEHICLE_PRICE_FEN``,
``ZHUISU_COMPARE_HOUSING_AREA_M2``); their digest is part of the comparison projection's
version, so a change rebuilds the matches.  Pure functions of plain values; no database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from domain.errors import InvalidInput


@dataclass(frozen=True)
class Model:
    model_id: str
    severity: str
    register: str | None  # the register kind it reads (domain.registers.RegisterKind)
    zh: str
    en: str

    def explain(self, **values: Any) -> tuple[str, str]:
        return self.zh.format(**values), self.en.format(**values)


_MODELS = [
    Model("COMPARE_PAID_AFTER_DEATH", "high", "death",
          "向已死亡人员所在户发放资金：{member}于{died_on}死亡，{paid_on}仍支付{amount}元",
          "payment of {amount} yuan on {paid_on} to the household of {member}, who died on "
          "{died_on}"),
    Model("COMPARE_PAYROLL_MEMBER", "high", "payroll",
          "建档立卡户成员{member}为财政供养人员（{payroll_unit}）",
          "registered household member {member} is on the public payroll ({payroll_unit})"),
    Model("COMPARE_CADRE_RELATIVE", "medium", "cadre_relatives",
          "建档立卡户成员{member}为村干部（{cadre_position}）的{relation}（{degree}级近亲属）",
          "registered household member {member} is a degree-{degree} relative ({relation}) "
          "of a village cadre ({cadre_position})"),
    Model("COMPARE_VEHICLE", "medium", "vehicle",
          "建档立卡户成员{member}名下有车辆{plate}（{vehicle_type}），购置价{price}元",
          "registered household member {member} owns vehicle {plate} ({vehicle_type}) "
          "bought for {price} yuan"),
    Model("COMPARE_COMMERCIAL_HOUSING", "medium", "property",
          "建档立卡户成员{member}名下有商品房（{location}），面积{area}平方米",
          "registered household member {member} owns commercial housing at {location}, "
          "{area} m²"),
    Model("COMPARE_BUSINESS_OWNER", "medium", "business",
          "建档立卡户成员{member}为企业（{credit_code}）{role}",
          "registered household member {member} is {role_en} of business {credit_code}"),
    Model("COMPARE_DUPLICATE_PERSON", "medium", None,
          "同一人员{member}同时在{other_code}户和本户{where}",
          "the same person {member} is a member of household {other_code} and of this one "
          "{where_en}"),
    Model("COMPARE_DIBAO_CONTRADICTS", "low", "dibao",
          "成员{member}低保已于{ended_on}{dibao_status}，该户{applied_on}仍申请建档立卡",
          "member {member}'s 低保 was {dibao_status_en} on {ended_on}, yet the household "
          "applied on {applied_on}"),
    Model("COMPARE_DISABILITY_CONTRADICTS", "low", "disability",
          "该户致贫原因为因残，但残疾人登记中无该户成员",
          "the household gives disability (因残) as a cause of poverty, yet none of its "
          "members is in the disabled persons' register"),
]
MODELS: dict[str, Model] = {m.model_id: m for m in _MODELS}
MODEL_IDS: tuple[str, ...] = tuple(MODELS)
MODELS_BY_REGISTER: dict[str, tuple[str, ...]] = {}
for _m in _MODELS:
    if _m.register:
        MODELS_BY_REGISTER[_m.register] = (*MODELS_BY_REGISTER.get(_m.register, ()), _m.model_id)


def catalogue() -> list[dict[str, Any]]:
    return [asdict(m) for m in _MODELS]


# settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareSettings:
    """Thresholds of the comparison models (defaults as docs/INSPECTION.md)."""

    vehicle_price_fen: int = 5_000_000  # 50,000 元
    housing_area_m2: int = 60

    def __post_init__(self) -> None:
        for name in ("vehicle_price_fen", "housing_area_m2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name} must be a whole number ≥ 0", field=name)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CompareSettings:
        env = os.environ if env is None else env
        values: dict[str, int] = {}
        for name, var in ENV.items():
            raw = (env.get(var) or "").strip()
            if raw:
                try:
                    values[name] = int(raw.replace("_", ""))
                except ValueError:
                    raise InvalidInput(f"{var} must be a whole number, not {raw!r}",
                                       field=var) from None
        return cls(**values)

    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


ENV = {"vehicle_price_fen": "ZHUISU_COMPARE_VEHICLE_PRICE_FEN",
       "housing_area_m2": "ZHUISU_COMPARE_HOUSING_AREA_M2"}


# decisions -------------------------------------------------------------------------------
CANCELLED_DIBAO = {"取消", "停保", "退出", "注销", "cancelled", "stopped"}
DIBAO_EN = {"取消": "cancelled", "停保": "stopped", "退出": "ended", "注销": "cancelled"}
OWNER_ROLES = {"法定代表人": "legal representative", "股东": "shareholder",
               "负责人": "person in charge", "投资人": "investor", "经营者": "operator"}
COMMERCIAL = ("商品房", "商品住房", "commercial")


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def paid_after_death(row: Mapping[str, Any], paid_on: dt.date) -> bool:
    """A payment dated after the date of death (the day of death itself is not after)."""
    died = _date(row.get("date_of_death"))
    return died is not None and paid_on > died


def row_matches(kind: str, row: Mapping[str, Any], settings: CompareSettings,
                applied_on: dt.date | None = None) -> str | None:
    """The model a register row of ``kind`` about a household member triggers on its own
    (the payment and the disability models need more: ``paid_after_death``,
    ``disability_contradicts``), or None."""
    if kind == "payroll":
        return "COMPARE_PAYROLL_MEMBER"
    if kind == "cadre_relatives":
        degree = row.get("degree")
        return "COMPARE_CADRE_RELATIVE" if degree in (1, 2) else None
    if kind == "vehicle":
        price = row.get("price_fen")
        return "COMPARE_VEHICLE" if isinstance(price, int) and \
            price >= settings.vehicle_price_fen else None
    if kind == "property":
        area = row.get("area_m2")
        kind_text = str(row.get("property_kind") or "")
        return "COMPARE_COMMERCIAL_HOUSING" if any(k in kind_text for k in COMMERCIAL) and \
            isinstance(area, (int, float)) and area >= settings.housing_area_m2 else None
    if kind == "business":
        return "COMPARE_BUSINESS_OWNER" if str(row.get("role") or "") in OWNER_ROLES else None
    if kind == "dibao":
        ended = _date(row.get("end_date"))
        if str(row.get("dibao_status") or "") in CANCELLED_DIBAO and ended is not None and \
                applied_on is not None and ended <= applied_on:
            return "COMPARE_DIBAO_CONTRADICTS"
        return None
    return None


def disability_contradicts(causes: list[str], members_in_register: int) -> bool:
    """因残 given as a cause (main or secondary) and no member in the register."""
    return "disability" in causes and members_in_register == 0


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def values_for(model_id: str, row: Mapping[str, Any], member: str, **more: Any) -> dict:
    """The explanation's values from a register row and the member's name."""
    v: dict[str, Any] = {"member": member, **{k: ("" if x is None else x)
                                              for k, x in row.items()}, **more}
    if model_id == "COMPARE_VEHICLE":
        v["price"] = yuan(int(row.get("price_fen") or 0))
    if model_id == "COMPARE_COMMERCIAL_HOUSING":
        v["area"] = row.get("area_m2")
    if model_id == "COMPARE_BUSINESS_OWNER":
        v["role_en"] = OWNER_ROLES.get(str(row.get("role")), str(row.get("role")))
    if model_id == "COMPARE_DIBAO_CONTRADICTS":
        v["ended_on"] = str(row.get("end_date") or "")
        v["dibao_status_en"] = DIBAO_EN.get(str(row.get("dibao_status")), "ended")
    if model_id == "COMPARE_PAID_AFTER_DEATH":
        v["died_on"] = str(row.get("date_of_death") or "")
    return v
