"""案件: discipline-inspection cases — the list, 立案 (from one or several flags, or by hand),
and the case page: facts, persons under review with the 一案双查 leaders the application
added and why, evidence, findings, 问责, 追回 (ordered / recovered / outstanding per
official: 谁签字谁追回), 整改 items with deadlines and overdue marks — with a form for
every step.

Writes go through the same application verbs, with the same arguments and the same checks,
as the API's case routes (``api/routes/cases.py``): ``Action.WRITE_CASES`` (inspectors
only), the case's region (or the region a case is opened in) within the person's
jurisdiction, a recovery order's accounts too, every piece of evidence and every flag
within the case's region subtree (``domain.case.check_within_case``, located here as the
API locates it: the console may not import ``api``), ``recorded_by`` the signed-in
person (name, role, account), never the form.  A refusal re-shows the form with a Chinese
message beside the field the refusal names; refusals before any form (role, the case's
jurisdiction, CSRF) are the Chinese refusal page.  Every case shown is recorded in the
access log, as the API records it; so is every flag a new case is drafted from.

Why one file: the screen's three pages share one set of forms, one mapping of refusals to
Chinese messages beside their fields (``FormState``, ``zh_message``) and one locator of
evidence; each route is a few lines over them, and split apart each would be read without
the rules that decide what its form may record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from uuid import UUID

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool

from access.errors import Refusal
from access.reads import Read
from access.roles import PERMISSIONS, Action
from console.web import (
    POSITION_ZH,
    PURPOSE_ZH,
    RESPONSIBILITY_ZH,
    RULE_ZH,
    SIGN_ROLE_ZH,
    ConsoleRoute,
    Person,
    check_csrf,
    covers,
    may,
    page,
    read_models,
    record,
    redirect,
    zhuisu,
)
from domain.application import Zhuisu
from domain.case import check_within_case, evidence_item
from domain.errors import DomainError, InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.limits import record_date
from domain.money import PURPOSES
from domain.official import Official
from domain.region import Region, RegionPath, Unit
from projections import case_queries as cq
from projections import cases as cs
from projections import register as reg
from projections import responsibility as rs
from projections.flags import queries as flag_queries

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
MAX_FLAGS = 50  # flags one case may be drafted from at once

# Chinese names -------------------------------------------------------------------------------
CASE_TYPE_ZH = {"false_claim": "虚报冒领", "diversion": "截留挪用", "favouritism": "优亲厚友",
                "embezzlement": "贪污侵占", "idle_funds": "资金闲置（滞留）",
                "fake_exit": "数字脱贫 / 虚假脱贫", "wrong_identification": "识别不精准",
                "duty_neglect": "失职失责", "other": "其他"}
ACTION_ZH = {"admonition_talk": "诫勉谈话", "criticism": "通报批评", "warning": "警告",
             "serious_warning": "严重警告 / 记过", "demotion": "撤销职务 / 降级",
             "dismissal": "开除", "transfer_to_prosecution": "移送司法机关"}
BASIS_ZH = {"subject": "直接当事人", "oversight": "一案双查"}
CASE_STATUS_ZH = {"open": "在办", "rectified": "已整改到位", "closed": "已结案"}
EVIDENCE_ZH = {"event": "事件（日志位置）", "household": "农户", "official": "干部",
               "payment": "支付", "account": "资金账户", "flag": "问题线索", "document": "文书"}
ITEM_STATUS_ZH = {"open": "整改中", "overdue": "逾期未完成", "completed": "已完成",
                  "completed_late": "逾期完成"}
PAYEE_ZH = {"household": "农户", "project": "项目", "supplier": "供应商"}
STEP_TITLE_ZH = {"link_evidence": "添加证据", "add_person": "添加被审查人",
                 "record_finding": "认定事实", "impose_accountability": "问责",
                 "add_rectification_item": "添加整改事项",
                 "complete_rectification_item": "整改事项完成", "rectify": "整改到位",
                 "close": "结案", "order_recovery": "下达追回令", "open": "立案"}
# the case type a flag suggests (the inspector chooses)
RULE_CASE_TYPE = {"PAY_REMOVED": "false_claim", "PAY_AFTER_EXIT": "false_claim",
                  "PAY_UNREGISTERED": "false_claim", "PAY_DUPLICATE": "false_claim",
                  "BANK_ACCOUNT_SHARED": "false_claim", "SPLIT_PAYMENT": "diversion",
                  "PAYEE_RELATIVE_OF_SIGNER": "favouritism", "SIGNERS_RELATED": "favouritism",
                  "APPROVER_RELATED_TO_HOUSEHOLD": "favouritism", "IDLE_FUNDS": "idle_funds",
                  "EXIT_CHECKS_FAILED": "fake_exit", "RELAPSE_SOON": "fake_exit",
                  "BACKDATED": "duty_neglect", "RECTIFICATION_OVERDUE": "duty_neglect"}
SUSPENDABLE = {code: p.title for code, p in PURPOSES.items()
               if p.payees and not p.negative_list_item}
LEVELS = cs.LEVELS


# refusals in Chinese, next to the field they name ----------------------------------------------
RULE_MESSAGE_ZH = {
    "InvalidInput": "输入有误，请检查此项",
    "NotFound": "未找到所填的对象",
    "AlreadyExists": "该编号已被使用，且内容不同",
    "IdempotencyConflict": "与已记录的内容冲突",
    "EvidenceOutsideCase": "不在本案地区范围内：证据和问题线索须位于案件所在地区之内",
    "OutsideJurisdiction": "超出您的管辖范围",
    "RoleNotPermitted": "您的角色无权进行此操作",
    "CaseClosed": "案件已结案，不能再办理",
    "RectificationOutstanding": "尚有整改事项未完成，请先逐项完成整改",
    "StepOutOfOrder": "案件已整改到位，不能再添加整改事项",
    "PolicySuspended": "相关政策已暂停",
    "CsrfRefused": "表单已过期或来源不明，请刷新页面后重试",
}
DATE_ZH = "日期须为 YYYY-MM-DD，不早于 2013-01-01，不晚于明天"
FIELD_MESSAGE_ZH: dict[tuple[str, str], str] = {
    ("InvalidInput", "case_no"): "案号须为 1–64 个汉字、字母、数字、“-”“_”或〔〕，"
                                 "不能含空格、点、斜杠或反斜杠",
    ("InvalidInput", "case_type"): "请选择案件类型",
    ("InvalidInput", "region_code"): "请填写地区代码",
    ("InvalidInput", "effective_date"): DATE_ZH + "，且不早于立案日期",
    ("InvalidInput", "incident_date"): DATE_ZH + "，且不晚于立案日期",
    ("InvalidInput", "opened_on"): "立案日期须为 YYYY-MM-DD，不早于 2013-01-01，不晚于明天",
    ("InvalidInput", "deadline"): "整改时限须为 YYYY-MM-DD，不早于设立日期，且不超过五年",
    ("InvalidInput", "suspend_policies"): "暂停政策只能用于村级案件，且须为到户或到项目的资金用途",
    ("InvalidInput", "subjects"): "被审查人有误：每人须写明理由，且不能重复",
    ("InvalidInput", "flag_ids"): "问题线索编号有误",
    ("InvalidInput", "amount"): "金额须为不小于 0 的元数，最多两位小数",
    ("InvalidInput", "amount_fen"): "金额须为不小于 0 的元数，最多两位小数",
    ("InvalidInput", "payments"): "请至少选择一笔支付",
    ("InvalidInput", "pay_amount"): "追回金额须大于 0，且不超过该笔支付尚未追回、"
                                    "本案尚未下令追回的金额",
    ("InvalidInput", "pay"): "支付 ID 或资金账户 ID 格式有误",
    ("InvalidInput", "official_id"): "问责对象须是本案的被审查人（请先添加为被审查人）",
    ("InvalidInput", "official"): "请填写干部编码或 ID",
    ("InvalidInput", "ref"): "证据编号格式有误：事件填日志位置（正整数），农户、干部、支付、"
                             "资金账户填 ID，问题线索填线索编号，文书填文号",
    ("InvalidInput", "account_id"): "支付证据须填写其资金账户 ID",
    ("InvalidInput", "kind"): "请选择证据类型",
    ("InvalidInput", "basis"): "请选择列入依据",
    ("InvalidInput", "action"): "请选择问责方式",
    ("NotFound", "region_code"): "未找到该地区代码",
    ("NotFound", "official"): "未找到该干部：请填写干部编码（如 990121-magistrate）或 ID",
    ("NotFound", "official_id"): "未找到该干部",
    ("NotFound", "extra_official"): "未找到该干部：请填写干部编码（如 990121-magistrate）或 ID",
    ("NotFound", "subjects"): "未找到所选干部",
    ("NotFound", "unit_code"): "未找到该单位：请填写单位编码",
    ("NotFound", "ref"): "未找到该证据对象",
    ("NotFound", "evidence"): "未找到该证据对象",
    ("NotFound", "account_id"): "未找到该资金账户",
    ("NotFound", "flag_ids"): "未找到该问题线索",
    ("NotFound", "item_id"): "本案没有该整改事项",
    ("NotFound", "pay"): "未找到该笔支付（请核对资金账户 ID 与支付 ID）",
    ("AlreadyExists", "case_no"): "该案号已被另一案件使用",
    ("AlreadyExists", "finding_id"): "该编号的事实已记录且内容不同，请换一个编号",
    ("AlreadyExists", "item_id"): "该编号的整改事项已存在且内容不同，请换一个编号",
    ("AlreadyExists", "order_id"): "该编号的追回令已存在且内容不同，请换一个编号",
    ("OutsideJurisdiction", "region_code"): "该地区超出您的管辖范围",
    ("OutsideJurisdiction", "pay"): "该笔支付的资金账户超出您的管辖范围",
    ("RectificationOutstanding", "status"): "本案暂停了村里的相关政策，须先整改到位再结案",
    ("StepOutOfOrder", "item_id"): "案件已整改到位，不能再添加整改事项",
}
TEXT_FIELDS = {"title", "reason", "text", "problem", "summary", "conclusion", "evidence",
               "note", "decision_no", "finding_id", "item_id", "order_id", "unit_code"}


def zh_message(rule: str, field: str | None, message: str) -> str:
    """A refusal in Chinese: by rule and field, else by rule."""
    if "no signers in a money role" in message:
        return "该笔支付没有经办、审核或审批签字人，无法按“谁签字谁追回”分摊"
    found = re.search(r"only (\d+) fen of that payment is still out", message)
    if found:
        return (f"追回金额不能超过该笔支付尚未追回的 {_yuan(found.group(1))} 元")
    found = re.search(r"(\d+) fen of that payment are already ordered back", message)
    if found:
        return (f"本案已对该笔支付下令追回 {_yuan(found.group(1))} 元，"
                "再次下令不能超过尚未追回的金额")
    if "listed twice" in message:
        return "同一笔支付或同一名干部不能重复列出"
    if "was reversed" in message:
        return "该笔支付已冲正，无可追回"
    if field and (rule, field) in FIELD_MESSAGE_ZH:
        return FIELD_MESSAGE_ZH[(rule, field)]
    if rule == "InvalidInput":
        found = re.search(r"at most ([\d,]+) are allowed", message)
        if found:
            return f"内容过长：此项最多 {found.group(1)} 个字"
        if field in TEXT_FIELDS or "non-empty" in message:
            return "请填写此项（不能为空，不能含控制字符）"
        if "UUID" in message:
            return "须为 ID（形如 xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx）"
        if "date" in message or "YYYY-MM-DD" in message:
            return DATE_ZH
    return RULE_MESSAGE_ZH.get(rule, "操作被拒绝")


class FormState:
    """A form shown again after a refusal: what was entered and where it went wrong."""

    def __init__(self, name: str, values: Mapping[str, Any], fields: Iterable[str]):
        self.name = name
        self.values = dict(values)
        self.fields = set(fields)  # the form's own fields (a refusal of another is form-wide)
        self.field: str | None = None
        self.message: str | None = None
        self.detail: str | None = None
        self.rule: str | None = None
        self.status = 422

    def refused(self, exc: DomainError | Refusal, field: str | None,
                message_field: str | None = None) -> FormState:
        """``exc`` shown beside ``field`` (if the form has it), in the words kept for
        ``message_field`` (default: ``field``)."""
        self.rule, self.detail, self.status = exc.rule, exc.message, exc.status
        self.message = zh_message(exc.rule, message_field or field, exc.message)
        self.field = field if field in self.fields else None
        return self

    def error(self, field: str) -> str | None:
        return self.message if self.field == field else None

    @property
    def general(self) -> str | None:
        """The refusal, if it names no field of this form."""
        return self.message if self.message and self.field is None else None


def form_field(field: str | None, renames: Mapping[str, str] | None = None) -> str | None:
    """The form's field for a refusal's field: ``items[0].ref`` → ``ref``,
    ``subjects[1].official_id`` → ``subjects``, then renamed (``official_id`` →
    ``official``)."""
    if not field:
        return None
    head = re.sub(r"\[\d+\]", "", field)
    if head.startswith("items."):
        head = head[len("items."):]
    elif "." in head:
        head = head.split(".")[0]
    return (renames or {}).get(head, head)


# who records, where evidence lies -------------------------------------------------------------
def recorded_by(person: Person) -> str:
    """Who records a case step: the person's name, role and account — as the API's
    ``recorded_by`` names a token's."""
    p = person.account.principal
    return f"{p.name} ({p.role.value}, token {p.token_id})"


_RECORDER = re.compile(r"^(?P<name>.*) \((?P<role>\w+), token (?P<account>[^)]+)\)$")


def recorder(text: str) -> dict[str, str | None]:
    """``recorded_by`` as name, role and account (or token); another form as the name."""
    m = _RECORDER.match(text or "")
    return m.groupdict() if m else {"name": text, "role": None, "account": None}


def can_write(person: Person) -> bool:
    return Action.WRITE_CASES in PERMISSIONS[person.account.role]


def _region_path_at(app: Zhuisu, code: str | None) -> RegionPath:
    try:
        return dict(app.region(str(code)).path) if code else {}
    except NotFound:
        return {}


def _path_of(app: Zhuisu, aggregate: Aggregate) -> RegionPath:
    """Where an aggregate lies, as the API's ``subject_of`` says."""
    if isinstance(aggregate, Region):
        return dict(aggregate.path)
    if isinstance(aggregate, (Official, Unit)):
        return _region_path_at(app, aggregate.region_code)
    return dict(getattr(aggregate, "region_path", {}) or {})


def _payment_path(app: Zhuisu, account: FundAccount, movement_id: str, field: str) -> RegionPath:
    """A payment lies at its payee (household, project; a supplier's project), any other
    movement at its account."""
    m = account.movements.get(str(movement_id))
    if m is None:
        raise NotFound(f"no movement {movement_id} on account {account.id}", field=field)
    payee = m.get("payee_id") if m.get("payee_kind") in ("household", "project") \
        else m.get("project_id")
    if payee:
        try:
            return _path_of(app, app.load(Aggregate, payee, field))
        except (NotFound, InvalidInput):
            pass
    return dict(account.region_path)


def _event_path(app: Zhuisu, position: int, field: str) -> RegionPath:
    found = app.recorder.select_notifications(start=position, limit=1)
    if not found or found[0].id != position:
        raise NotFound(f"no event at log position {position}", field=field)
    aggregate = app.load(Aggregate, found[0].originator_id, field)
    if isinstance(aggregate, FundAccount):
        e = app.mapper.to_domain_event(found[0])
        mid = getattr(e, "of_movement_id", None) or getattr(e, "movement_id", None)
        if mid is not None and str(mid) in aggregate.movements:
            return _payment_path(app, aggregate, str(mid), field)
    return _path_of(app, aggregate)


def _flag_path(db: Any, flag_id: str, field: str) -> RegionPath:
    try:
        return flag_queries.get_flag(db, flag_id).get("region_path") or {}
    except NotFound as exc:
        raise NotFound(f"no flag {flag_id}", field=field) from exc


def check_evidence(app: Zhuisu, db: Any, region_path: RegionPath, items: list[dict],
                   flag_ids: list[str], field: str) -> None:
    """Every reference lies within the case's region subtree (a document has none); an
    unknown one is ``NotFound`` — the rule the API holds evidence to."""
    for i, raw in enumerate(items):
        at = f"{field}[{i}]"
        item = evidence_item(raw, at)
        kind, ref, where = item["kind"], item["ref"], f"{at}.ref"
        if kind == "document":
            continue
        if kind == "event":
            path = _event_path(app, ref, where)
        elif kind == "payment":
            account = app.load(FundAccount, item["account_id"], f"{at}.account_id")
            path = _payment_path(app, account, ref, where)
        elif kind == "flag":
            path = _flag_path(db, ref, where)
        else:
            cls = {"household": Household, "official": Official, "account": FundAccount}[kind]
            path = _path_of(app, app.load(cls, ref, where))
        check_within_case(region_path, f"{kind} {ref}", path, where)
    for i, flag_id in enumerate(flag_ids):
        where = f"flag_ids[{i}]"
        check_within_case(region_path, f"flag {flag_id}", _flag_path(db, flag_id, where), where)


# reading forms -------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text(form: Mapping[str, Any], name: str, *, required: bool = True,
         field: str | None = None) -> str:
    """A line of text; a textarea's line breaks become spaces (the API takes no control
    characters: ``api.routes.cases.TEXT``)."""
    value = re.sub(r"\s*[\r\n]+\s*", " ", str(form.get(name) or "")).strip()
    if _CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field=field or name)
    if required and not value:
        raise InvalidInput("must be a non-empty string", field=field or name)
    return value


def day(form: Mapping[str, Any], name: str, *, required: bool = True) -> dt.date | None:
    value = str(form.get(name) or "").strip()
    if not value:
        if required:
            raise InvalidInput("must be a date YYYY-MM-DD", field=name)
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("must be a date YYYY-MM-DD", field=name) from exc


def fen_of(value: Any, field: str, *, positive: bool = False) -> int | None:
    """元 as typed ('1,234.5') → integer fen (never through a float); '' → None."""
    raw = str(value or "").strip().replace(",", "").replace("，", "").replace("元", "")
    if not raw:
        return None
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:
        raise InvalidInput("must be an amount in yuan", field=field) from exc
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) \
            or amount != amount.quantize(Decimal("0.01")) or amount > Decimal(10) ** 13:
        raise InvalidInput("must be an amount in yuan with at most two decimals",
                           field=field)
    return int(amount * 100)


def official_ref(value: str, field: str) -> str:
    """An official by id or by code (``990121-magistrate``)."""
    value = value.strip()
    if not value:
        raise InvalidInput("must name an official", field=field)
    try:
        return str(UUID(value))
    except ValueError:
        return str(Official.create_id(value))


def evidence_key(item: Mapping[str, Any]) -> str:
    return f"{item['kind']}|{item['ref']}|{item.get('account_id') or ''}"


def evidence_of_key(key: str, note: str = "") -> dict[str, Any]:
    kind, _, rest = key.partition("|")
    ref, _, account = rest.partition("|")
    item: dict[str, Any] = {"kind": kind, "ref": int(ref) if kind == "event" and
                            ref.isdigit() else ref, "note": note}
    if account:
        item["account_id"] = account
    return item


def today(request: Request) -> dt.date:
    return record_date(zhuisu(request).clock())


# reading the read models ---------------------------------------------------------------------
def region_names(db: Any, codes: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return {}
    with db.connect() as conn:
        return dict(conn.execute(select(cs.regions.c.code, cs.regions.c.name)
                                 .where(cs.regions.c.code.in_(wanted))).all())


def officials_near(db: Any, region_code: str) -> list[dict]:
    """Officials of a region, of the regions below it and of those above it (for the forms'
    lists: who may be named in a case there)."""
    found = cq.region_of(db, region_code)
    above = list((found or {}).get("path", {}).values())
    o, r = rs.officials, cs.regions
    with db.connect() as conn:
        rows = conn.execute(
            select(o.c.official_id, o.c.code, o.c.name, o.c.unit_code, o.c.region_code)
            .join(r, r.c.code == o.c.region_code)
            .where(or_(cq.in_region(r, region_code), o.c.region_code.in_(above or [""])))
            .order_by(o.c.region_code, o.c.code).limit(2000)).mappings().all()
    return [dict(x) for x in rows]


def officials_by_id(db: Any, ids: Iterable[str]) -> dict[str, dict]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    o = rs.officials
    with db.connect() as conn:
        return {x["official_id"]: dict(x) for x in conn.execute(
            select(o).where(o.c.official_id.in_(wanted))).mappings()}


def payments_of(db: Any, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Payments by (account id, movement id): amount, date, purpose, payee, what came back,
    whether reversed, who signed — from the responsibility read model."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    m, h = rs.movements, reg.households
    out: dict[tuple[str, str], dict] = {}
    with db.connect() as conn:
        for i in range(0, len(wanted), 100):
            part = wanted[i:i + 100]
            rows = conn.execute(select(m).where(or_(*[
                and_(m.c.account_id == a, m.c.movement_id == mv) for a, mv in part]))
            ).mappings().all()
            for x in rows:
                out[(x["account_id"], x["movement_id"])] = dict(x)
        payees = sorted({p["payee_id"] for p in out.values()
                         if p.get("payee_kind") == "household" and p.get("payee_id")})
        codes = dict(conn.execute(select(h.c.household_id, h.c.code)
                                  .where(h.c.household_id.in_(payees))).all()) if payees else {}
    for p in out.values():
        p["payee_code"] = codes.get(p.get("payee_id"))
    return out


def household_codes(db: Any, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({str(i) for i in ids})
    if not wanted:
        return {}
    h = reg.households
    with db.connect() as conn:
        return dict(conn.execute(select(h.c.household_id, h.c.code)
                                 .where(h.c.household_id.in_(wanted))).all())


def describe_evidence(db: Any, items: list[Mapping[str, Any]]) -> list[dict]:
    """Each piece of evidence with a line in Chinese and a link to its screen."""
    pays = payments_of(db, [(str(e.get("account_id")), str(e["ref"])) for e in items
                            if e["kind"] == "payment"])
    people = officials_by_id(db, [str(e["ref"]) for e in items if e["kind"] == "official"])
    homes = household_codes(db, [str(e["ref"]) for e in items if e["kind"] == "household"])
    steps = signed_steps(db, [int(e["ref"]) for e in items if e["kind"] == "event"
                              and str(e["ref"]).isdigit()])
    out = []
    for e in items:
        kind, ref = e["kind"], str(e["ref"])
        line, href = ref, None
        if kind == "payment":
            p = pays.get((str(e.get("account_id")), ref))
            href = f"/console/money/trace/{quote(ref)}?account={quote(str(e.get('account_id')))}"
            if p:
                payee = PAYEE_ZH.get(p.get("payee_kind") or "", "")
                line = (f"{p['effective_date']} 支付 {_yuan(p['amount_fen'])} 元 · "
                        f"{PURPOSE_ZH.get(p['purpose'], p['purpose'])} · 收款{payee} "
                        f"{p.get('payee_code') or (p.get('payee_id') or '')[:8]}")
        elif kind == "official":
            o = people.get(ref)
            href = f"/console/officials/{quote(ref)}"
            if o:
                line = f"{o['name']}（{o['code']}）"
        elif kind == "household":
            href = f"/console/households/{quote(ref)}"
            if ref in homes:
                line = f"户编码 {homes[ref]}"
        elif kind == "flag":
            href = f"/console/flags/{quote(ref, safe=':')}"
            line = f"{RULE_ZH.get(ref.split(':')[0], ref.split(':')[0])} · {ref}"
        elif kind == "event":
            line = f"日志位置 #{ref}"
            if int(ref) in steps:
                step, on = steps[int(ref)]
                line += f" · {step_zh(step)} · {on}"
        out.append({**e, "key": evidence_key(e), "line": line, "href": href,
                    "kind_zh": EVIDENCE_ZH.get(kind, kind)})
    return out


def signed_steps(db: Any, positions: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The signed step at each log position: (step, business date)."""
    wanted = sorted(set(positions))
    if not wanted:
        return {}
    s = rs.signatures
    with db.connect() as conn:
        return {r.log_position: (r.step, plain_day(r.effective_date)) for r in conn.execute(
            select(s.c.log_position, s.c.step, s.c.effective_date)
            .where(s.c.log_position.in_(wanted)).distinct())}


def plain_day(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value or "")


def step_zh(step: str) -> str:
    """A step's Chinese name, as the household screen names it."""
    try:
        from console.screens.households import STEP_ZH
    except ImportError:  # that screen being edited: the step's own name
        return step
    return STEP_ZH.get(step, step)


def _yuan(fen: Any) -> str:
    from console.format import yuan

    return yuan(fen)


_OVERSIGHT = re.compile(r"^一案双查: (?P<kind>\w+) \((?P<resp>\w+)\) at (?P<at>\S+) on "
                        r"(?P<day>[\d-]+), over (?P<code>\S+) \((?P<pos>\w+) at (?P<pos_at>\S+)\)$")


def reason_zh(reason: str, names: Mapping[str, str], people: Mapping[str, str]) -> str:
    """The application's 一案双查 reason in Chinese; any other reason as written."""
    m = _OVERSIGHT.match(reason or "")
    if not m:
        return reason
    g = m.groupdict()

    def place(code: str) -> str:
        return f"{names.get(code, '')}（{code}）" if names.get(code) else code

    over = people.get(g["code"]) or g["code"]
    return (f"一案双查：{g['day']} 任{place(g['at'])}{POSITION_ZH.get(g['kind'], g['kind'])}"
            f"（{RESPONSIBILITY_ZH.get(g['resp'], g['resp'])}），对被审查人{over}"
            f"（{names.get(g['pos_at'], g['pos_at'])}{POSITION_ZH.get(g['pos'], g['pos'])}）"
            "负有领导、监管责任")


# the list ----------------------------------------------------------------------------------
Text = Annotated[str | None, Query(max_length=64)]


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, person: Person, status: Text = None, case_type: Text = None,
               region: Text = None,
               after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> HTMLResponse:
    may(person, Action.READ)
    app = zhuisu(request)
    code = region or person.account.region_code
    if region:
        covers(person, app.region(region, "region").path, f"地区 {region}", "region")
    if status and status not in CASE_STATUS_ZH:
        raise InvalidInput("状态应为 在办、已整改到位 或 已结案", field="status")
    if case_type and case_type not in CASE_TYPE_ZH:
        raise InvalidInput("未知的案件类型", field="case_type")
    db = read_models(request)
    found = cq.list_cases(db, region_code=code, status=status or None,
                          case_type=case_type or None, after=after or None, limit=PAGE)
    items = found["items"]
    record(request, person, [Read("case", c["case_id"], c["region_path"]) for c in items])
    args = {k: v for k, v in {"status": status, "case_type": case_type,
                               "region": region}.items() if v}
    return page(request, "cases.html", person, cases=items, args=args,
                next_after=found["next_after"], first=not after, region_code=code,
                status=status or "", case_type=case_type or "", region=region or "",
                names=region_names(db, [c["region_code"] for c in items] + [code]),
                types=CASE_TYPE_ZH, statuses=CASE_STATUS_ZH, can_write=can_write(person))


# opening a case ----------------------------------------------------------------------------
OPEN_FIELDS = ("case_no", "case_type", "title", "region_code", "effective_date",
               "incident_date", "subjects", "extra_official", "extra_reason", "evidence",
               "doc_ref", "doc_note", "flag_ids", "suspend_policies")


def _common_region(paths: list[Mapping[str, str]]) -> str | None:
    """The deepest region every path lies in."""
    code = None
    for level in LEVELS:
        here = {p.get(level) for p in paths}
        if len(here) != 1 or None in here:
            break
        code = here.pop()
    return code


def _flag_signers(db: Any, flags: list[dict]) -> list[dict]:
    """The officials who signed the flagged steps, with their role and position there."""
    ids = {s for f in flags for s in f.get("signers") or []}
    people = officials_by_id(db, ids)
    positions = {int(e["ref"]) for f in flags for e in f.get("evidence") or []
                 if e.get("kind") == "event"} | {int(f["log_position"]) for f in flags}
    roles: dict[str, dict] = {}
    if ids and positions:
        s = rs.signatures
        with db.connect() as conn:
            for x in conn.execute(select(s.c.official_id, s.c.role, s.c.post, s.c.post_region)
                                  .where(s.c.official_id.in_(sorted(ids)),
                                         s.c.log_position.in_(sorted(positions)))
                                  .order_by(s.c.log_position)).mappings():
                roles.setdefault(x["official_id"], dict(x))
    out = []
    for oid in sorted(ids, key=lambda i: ((people.get(i) or {}).get("code") or i)):
        who, role = people.get(oid, {}), roles.get(oid, {})
        rules = sorted({RULE_ZH.get(f["rule_id"], f["rule_id"]) for f in flags
                        if oid in (f.get("signers") or [])})
        sign_role = SIGN_ROLE_ZH.get(role.get("role") or "", "签字")
        out.append({"official_id": oid, "code": who.get("code"), "name": who.get("name"),
                    "unit_code": who.get("unit_code"), "role": role.get("role"),
                    "position": role.get("post"), "position_region": role.get("post_region"),
                    "reason": f"{'、'.join(rules)}：{sign_role}签字"})
    return out


def draft_from_flags(request: Request, person: Person, db: Any,
                     flag_ids: list[str]) -> dict[str, Any]:
    """What the new-case form offers and suggests for these flags (each within the
    person's jurisdiction; its read recorded)."""
    if len(flag_ids) > MAX_FLAGS:
        raise InvalidInput(f"一次最多据 {MAX_FLAGS} 条线索立案", field="flag")
    flags = []
    for fid in dict.fromkeys(flag_ids):
        if len(fid) > 300:
            raise InvalidInput("线索编号过长", field="flag")
        f = flag_queries.get_flag(db, fid)
        covers(person, f["region_path"], f"问题线索 {fid}", "flag")
        flags.append(f)
    record(request, person, [Read("flag", f["flag_id"], f["region_path"]) for f in flags])
    evidence: dict[str, dict] = {}
    for f in flags:
        for e in f.get("evidence") or []:
            item = {"kind": e["kind"], "ref": e["ref"], "note": ""}
            if e.get("account_id"):
                item["account_id"] = e["account_id"]
            evidence.setdefault(evidence_key(item), item)
    region_code = _common_region([f["region_path"] for f in flags]) if flags else \
        person.account.region_code
    names = region_names(db, [region_code])
    rules = list(dict.fromkeys(f["rule_id"] for f in flags))
    types = [RULE_CASE_TYPE.get(r, "other") for r in rules]
    dates = sorted(str(f["effective_date"]) for f in flags if f.get("effective_date"))
    title = ""
    if flags:
        title = f"{names.get(region_code or '', '')}" + "、".join(
            RULE_ZH.get(r, r) for r in rules) + "问题"
    signers = _flag_signers(db, flags) if flags else []
    return {"flags": flags, "signers": signers,
            "evidence": describe_evidence(db, list(evidence.values())),
            "values": {"region_code": region_code or "", "title": title[:200],
                       "case_type": max(set(types), key=types.count) if types else "",
                       "incident_date": dates[0] if dates else "",
                       "effective_date": today(request).isoformat(),
                       "subjects": [s["official_id"] for s in signers],
                       "evidence": list(evidence), "flag_ids": [f["flag_id"] for f in flags],
                       "suspend_policies": [],
                       **{f"reason:{s['official_id']}": s["reason"] for s in signers}}}


def _new_case_page(request: Request, person: Person, db: Any, draft: dict,
                   state: FormState | None = None) -> HTMLResponse:
    region_code = (state.values if state else draft["values"]).get("region_code") or \
        person.account.region_code or ""
    near = officials_near(db, region_code) if region_code else []
    response = page(request, "case_new.html", person, draft=draft,
                    values=state.values if state else draft["values"], state=state,
                    types=CASE_TYPE_ZH, suspendable=SUSPENDABLE, officials=near,
                    names=region_names(db, [region_code]), region_code=region_code)
    if state is not None:
        response.status_code = state.status
    return response


@router.get("/cases/new", response_class=HTMLResponse)
def new_case_form(request: Request, person: Person,
                  flag: Annotated[list[str] | None, Query()] = None) -> HTMLResponse:
    """立案 form; ``?flag=…`` (repeated) drafts it from flags: their region, dates, signers
    as persons under review and their evidence."""
    may(person, Action.WRITE_CASES)
    db = read_models(request)
    return _new_case_page(request, person, db, draft_from_flags(request, person, db,
                                                                flag or []))


def _open_case(request: Request, person: Person, form: Any) -> Response:
    app = zhuisu(request)
    db = read_models(request)
    values = {k: form.getlist(k) if k in ("subjects", "evidence", "flag_ids",
                                          "suspend_policies") else form.get(k)
              for k in form if k != "csrf"}
    flag_ids = [str(f) for f in form.getlist("flag_ids") if f][:MAX_FLAGS]
    state = FormState("open", values, OPEN_FIELDS)
    try:
        subjects = []
        for oid in form.getlist("subjects"):
            subjects.append({"official_id": str(oid),
                             "reason": text(form, f"reason:{oid}", field="subjects")})
        if str(form.get("extra_official") or "").strip():
            subjects.append({"official_id": official_ref(str(form.get("extra_official")),
                                                         "extra_official"),
                             "reason": text(form, "extra_reason")})
        evidence = [evidence_of_key(str(k)) for k in form.getlist("evidence")]
        if str(form.get("doc_ref") or "").strip():
            evidence.append({"kind": "document", "ref": text(form, "doc_ref"),
                             "note": text(form, "doc_note", required=False)})
        region_code = text(form, "region_code")
        effective = day(form, "effective_date")
        incident = day(form, "incident_date", required=False)
        case_no = str(form.get("case_no") or "").strip()
        region = app.region(region_code, "region_code")
        covers(person, region.path, f"地区 {region_code}", "region_code")
        check_evidence(app, db, region.path, evidence, flag_ids, "evidence")
        result = app.open_case(
            case_no=case_no, case_type=str(form.get("case_type") or ""),
            title=text(form, "title"), region_code=region_code, effective_date=effective,
            incident_date=incident, subjects=subjects, evidence=evidence, flag_ids=flag_ids,
            suspend_policies=[str(p) for p in form.getlist("suspend_policies")],
            recorded_by=recorded_by(person))
    except (DomainError, Refusal) as exc:
        field = form_field(exc.field, {"subjects": "subjects", "flag": "flag_ids"})
        ticked = len(form.getlist("subjects"))  # the extra official comes after them
        if field == "subjects" and (exc.field or "").startswith(f"subjects[{ticked}]"):
            field = "extra_official"
        if field == "evidence" and exc.field and re.match(r"evidence\[(\d+)\]", exc.field):
            index = int(re.match(r"evidence\[(\d+)\]", exc.field).group(1))  # type: ignore
            if index >= len(form.getlist("evidence")):
                field = "doc_ref"
        draft = draft_from_flags(request, person, db, flag_ids)
        return _new_case_page(request, person, db, draft, state.refused(
            exc, field, "opened_on" if field == "effective_date" else None))
    return redirect(f"/console/cases/{quote(case_no, safe='')}?"
                    + urlencode({"done": "open", **({} if result["recorded"] else
                                                      {"same": "1"})}))


@router.post("/cases/new")
async def open_case(request: Request, person: Person) -> Response:
    may(person, Action.WRITE_CASES)
    await check_csrf(request, person)
    form = await request.form()
    return await run_in_threadpool(_open_case, request, person, form)


# the case page -------------------------------------------------------------------------------
CaseNo = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f]+$")]


def _case_page(request: Request, person: Person, case_no: str, *,
               state: FormState | None = None, done: str | None = None,
               same: bool = False) -> HTMLResponse:
    db = read_models(request)
    view = cq.case_view(db, case_no)
    covers(person, view["region_path"], f"案件 {case_no}", "case_no")
    record(request, person, [Read("case", view["case_id"], view["region_path"])])
    people = {p["code"]: p["name"] for p in view["persons"] if p.get("code")}
    codes = {view["region_code"], *view["region_path"].values(),
             *[p.get("region_code") for p in view["persons"]],
             *[s["village"] for s in view["suspensions"]]}
    for p in view["persons"]:
        m = _OVERSIGHT.match(p.get("reason") or "")
        if m:
            codes |= {m["at"], m["pos_at"]}
    names = region_names(db, codes)
    for p in view["persons"]:
        p["reason_zh"] = reason_zh(p["reason"], names, people)
    evidence = describe_evidence(db, view["evidence"])
    ordered = {(ln["account_id"], ln["movement_id"]) for o in view["recovery"]["orders"]
               for ln in o["lines"]}
    payment_keys = [(str(e.get("account_id")), str(e["ref"])) for e in view["evidence"]
                    if e["kind"] == "payment"]
    pays = payments_of(db, payment_keys + list(ordered))
    candidates = []
    for key in dict.fromkeys(payment_keys):
        p = pays.get(key)
        candidates.append({"key": f"{key[0]}|{key[1]}", "account_id": key[0],
                           "movement_id": key[1], "payment": p, "ordered": key in ordered,
                           "out_fen": (p["amount_fen"] - p["recovered_fen"]) if p else None})
    for o in view["recovery"]["orders"]:
        for ln in o["lines"]:
            p = pays.get((ln["account_id"], ln["movement_id"])) or {}
            ln["payee_code"] = p.get("payee_code")
    writable = can_write(person) and view["status"] != "closed"
    near = officials_near(db, view["region_code"]) if writable else []
    response = page(
        request, "case.html", person, case=view, evidence=evidence, names=names,
        recorder=recorder(view["recorded_by"]),
        candidates=candidates, officials=near,
        units=sorted({o["unit_code"] for o in near}), writable=writable,
        state=state, done=done, same=same, step_titles=STEP_TITLE_ZH, types=CASE_TYPE_ZH,
        actions=ACTION_ZH, basis=BASIS_ZH, statuses=CASE_STATUS_ZH, kinds=EVIDENCE_ZH,
        item_statuses=ITEM_STATUS_ZH, payees=PAYEE_ZH, default_day=today(request).isoformat(),
        next_ids={"finding_id": f"F{len(view['findings']) + 1}",
                  "item_id": f"R{len(view['rectification']['items']) + 1}",
                  "order_id": f"追{len(view['recovery']['orders']) + 1}"},
        open_items=[i for i in view["rectification"]["items"] if i["completed_on"] is None])
    if state is not None:
        response.status_code = state.status
    return response


@router.get("/cases/{case_no}", response_class=HTMLResponse)
def case_page(request: Request, person: Person, case_no: CaseNo,
              done: Annotated[str | None, Query(max_length=40)] = None,
              same: Annotated[str | None, Query(max_length=2)] = None) -> HTMLResponse:
    may(person, Action.READ)
    return _case_page(request, person, case_no,
                      done=done if done in STEP_TITLE_ZH else None, same=bool(same))


# a case's steps ------------------------------------------------------------------------------
STEP_FIELDS = {
    "link_evidence": ("kind", "ref", "account_id", "note", "effective_date"),
    "add_person": ("official", "basis", "reason", "effective_date"),
    "record_finding": ("finding_id", "text", "amount", "effective_date"),
    "impose_accountability": ("official_id", "action", "decision_no", "reason",
                              "effective_date"),
    "add_rectification_item": ("item_id", "problem", "deadline", "unit_code", "official",
                               "effective_date"),
    "complete_rectification_item": ("evidence", "effective_date"),  # item_id: hidden
    "rectify": ("summary", "effective_date"),
    "close": ("conclusion", "effective_date"),
}
RENAMES = {"add_person": {"official_id": "official"},
           "add_rectification_item": {"official_id": "official"},
           "record_finding": {"amount_fen": "amount"},
           "link_evidence": {"items": "ref"}}


def _step_fields(step: str, form: Any) -> dict[str, Any]:
    """The step's arguments from its form, as the API's step bodies carry them."""
    fields: dict[str, Any] = {"effective_date": day(form, "effective_date")}
    if step == "link_evidence":
        kind = str(form.get("kind") or "")
        ref: Any = text(form, "ref")
        if kind == "event":
            if not ref.isdigit():
                raise InvalidInput("an event is referenced by its log position", field="ref")
            ref = int(ref)
        item = {"kind": kind, "ref": ref, "note": text(form, "note", required=False)}
        if str(form.get("account_id") or "").strip():
            item["account_id"] = text(form, "account_id")
        fields["items"] = [item]
    elif step == "add_person":
        fields.update(official_id=official_ref(str(form.get("official") or ""), "official"),
                      basis=str(form.get("basis") or ""), reason=text(form, "reason"))
    elif step == "record_finding":
        fields.update(finding_id=text(form, "finding_id"), text=text(form, "text"),
                      amount_fen=fen_of(form.get("amount"), "amount"))
    elif step == "impose_accountability":
        fields.update(official_id=str(form.get("official_id") or ""),
                      action=str(form.get("action") or ""),
                      decision_no=text(form, "decision_no"), reason=text(form, "reason"))
    elif step == "add_rectification_item":
        fields.update(item_id=text(form, "item_id"), problem=text(form, "problem"),
                      deadline=day(form, "deadline"), unit_code=text(form, "unit_code"),
                      official_id=official_ref(str(form.get("official") or ""), "official"))
    elif step == "complete_rectification_item":
        fields.update(item_id=text(form, "item_id"), evidence=text(form, "evidence"))
    elif step == "rectify":
        fields["summary"] = text(form, "summary")
    elif step == "close":
        fields["conclusion"] = text(form, "conclusion")
    return fields


def _take_step(request: Request, person: Person, case_no: str, step: str, form: Any) -> Response:
    app = zhuisu(request)
    case = app.case(case_no)
    covers(person, case.region_path, f"案件 {case_no}", "case_no")
    values = {k: form.get(k) for k in form if k != "csrf"}
    name = f"complete:{values.get('item_id')}" if step == "complete_rectification_item" \
        else step
    state = FormState(name, values, STEP_FIELDS[step])
    try:
        fields = _step_fields(step, form)
        if step == "link_evidence":
            check_evidence(app, read_models(request), case.region_path, fields["items"], [],
                           "items")
        result = app.case_step(case_no, step, **fields, recorded_by=recorded_by(person))
    except (DomainError, Refusal) as exc:
        field = form_field(exc.field, RENAMES.get(step))
        return _case_page(request, person, case_no, state=state.refused(exc, field))
    return redirect(f"/console/cases/{quote(case_no, safe='')}?" + urlencode(
        {"done": step, **({} if result["recorded"] else {"same": "1"})}) + f"#{_anchor(step)}")


def _anchor(step: str) -> str:
    return {"link_evidence": "evidence", "add_person": "persons", "record_finding": "findings",
            "impose_accountability": "actions", "order_recovery": "recovery",
            "close": "closing"}.get(step, "rectification")


@router.post("/cases/{case_no}/steps/{step}")
async def case_step(request: Request, person: Person, case_no: CaseNo,
                    step: Annotated[str, Path(max_length=40)]) -> Response:
    may(person, Action.WRITE_CASES)
    await check_csrf(request, person)
    if step not in STEP_FIELDS:
        raise InvalidInput(f"未知的办案步骤；可选：{', '.join(STEP_FIELDS)}", field="step")
    form = await request.form()
    return await run_in_threadpool(_take_step, request, person, case_no, step, form)


# 追回 ----------------------------------------------------------------------------------------
RECOVERY_FIELDS = ("order_id", "reason", "effective_date", "pay", "other_account",
                   "other_movement", "other_amount")


def _order_recovery(request: Request, person: Person, case_no: str, form: Any) -> Response:
    app = zhuisu(request)
    case = app.case(case_no)
    covers(person, case.region_path, f"案件 {case_no}", "case_no")
    values = {k: form.getlist(k) if k == "pay" else form.get(k)
              for k in form if k != "csrf"}
    state = FormState("order_recovery", values,
                      (*RECOVERY_FIELDS, *[f"amount:{k}" for k in form.getlist("pay")]))
    rows: list[str] = []  # the form field of each payment, in order
    try:
        payments = []
        for key in form.getlist("pay"):
            account_id, _, movement_id = str(key).partition("|")
            amount = fen_of(form.get(f"amount:{key}"), f"amount:{key}", positive=True)
            rows.append(f"amount:{key}")
            payments.append({"account_id": account_id, "movement_id": movement_id,
                             **({"amount_fen": amount} if amount is not None else {})})
        if str(form.get("other_movement") or "").strip():
            amount = fen_of(form.get("other_amount"), "other_amount", positive=True)
            rows.append("other_movement")
            payments.append({"account_id": text(form, "other_account"),
                             "movement_id": text(form, "other_movement"),
                             **({"amount_fen": amount} if amount is not None else {})})
        if not payments:
            raise InvalidInput("a recovery order names at least one payment", field="payments")
        effective = day(form, "effective_date")
        for i, p in enumerate(payments):
            path = _path_of(app, app.load(FundAccount, p["account_id"],
                                          f"payments[{i}].account_id"))
            covers(person, path, f"资金账户 {p['account_id']}", f"payments[{i}].account_id")
        result = app.order_recovery(
            case_no, order_id=text(form, "order_id"), effective_date=effective,
            reason=text(form, "reason"), recorded_by=recorded_by(person), payments=payments)
    except (DomainError, Refusal) as exc:
        field, message_field = form_field(exc.field), form_field(exc.field)
        if field == "payments":
            field = message_field = "pay"
        found = re.match(r"payments\[(\d+)\]\.(\w+)", exc.field or "")
        if found and int(found.group(1)) < len(rows):
            row, part = rows[int(found.group(1))], found.group(2)
            message_field = "pay_amount" if part == "amount_fen" else "pay"
            field = row if row != "other_movement" else {
                "account_id": "other_account", "amount_fen": "other_amount"}.get(
                    part, "other_movement")
        elif field in ("other_amount",) or (field or "").startswith("amount:"):
            message_field = "amount"
        if exc.field == "payments" and "at least one" in exc.message:
            message_field = "payments"
        return _case_page(request, person, case_no,
                          state=state.refused(exc, field, message_field))
    return redirect(f"/console/cases/{quote(case_no, safe='')}?" + urlencode(
        {"done": "order_recovery", **({} if result["recorded"] else {"same": "1"})})
        + "#recovery")


@router.post("/cases/{case_no}/recovery-orders")
async def order_recovery(request: Request, person: Person, case_no: CaseNo) -> Response:
    may(person, Action.WRITE_CASES)
    await check_csrf(request, person)
    form = await request.form()
    return await run_in_threadpool(_order_recovery, request, person, case_no, form)

