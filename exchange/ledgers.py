"""The ledgers offices file (台账), each from the read models' own queries:

* **问题线索台账** (``flags``): the red flags of a region's subtree (standing, withdrawn or
  all; by business date) — ``projections.flags.queries.list_flags`` — with the rule's
  name, severity, place, the amount involved, the explanation, who signed the step it
  questions (``projections.chains.event_chain``) and its state: 在办, 已撤销, or 已立案
  with the case numbers of the cases in the subtree that name it
  (``projections.case_queries.list_cases``);
* **整改台账** (``rectification``): the rectification items of the cases in the subtree
  (``projections.case_queries.rectification_items``), each 已整改 (销号: completed, late
  or not), 持续整改 (open, within its deadline) or 未整改 (逾期: past its deadline on
  ``as_of``, by default the log clock);
* **扶贫资金总台账** (``funds``): per account and purpose, 下达 (money in: received and
  allocated from above), 分配 (allocated down), 支付（拨付） (paid out), 追回, 结余 and
  支出进度 (paid ÷ money in, as the overview's); per account (``projections.queries.
  balances``); and a summary in 万元 per fund source and for the whole region
  (``balance_summary``, ``projections.overview.money_of``);
* **发放清册** and **一户一档**: ``exchange.households``.

``build(key, context, params)`` makes one; ``LEDGERS`` names them.  Every ledger lists the
subjects it shows in ``Ledger.shown`` for the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select

from access.reads import Read
from domain.errors import InvalidInput
from domain.lead import DISPOSITION_ZH, STATUS_ZH, VERDICT_ZH
from exchange import households
from exchange.labels import (
    FUND_ZH,
    NOT_RECTIFIED,
    ONGOING,
    PURPOSE_ZH,
    RECTIFIED,
    RULE_ZH,
    SEVERITY_ZH,
    SIGN_ROLE_ZH,
)
from exchange.layout import (
    DATE,
    INT,
    MONEY,
    PERCENT,
    TEXT,
    TOTAL,
    WAN,
    Column,
    Ledger,
    Sheet,
    ratio,
    sum_fen,
    wan,
)
from exchange.sources import Context, Params
from projections import balances as bal
from projections import case_queries as cq
from projections.flags import queries as flag_queries
from projections import leads as lead_queries
from projections.overview import money_of
from projections.queries import balance_summary, balances, connected, total

FLAG_PAGE = flag_queries.MAX_LIMIT
CASE_PAGE = 500


@dataclass(frozen=True)
class Spec:
    title: str
    build: Callable[[Context, Params], Ledger]
    asks: str  # what it is asked for (the adapters' help)


def build(key: str, context: Context, params: Params) -> Ledger:
    spec = LEDGERS.get(key)
    if spec is None:
        raise InvalidInput(f"unknown ledger; one of {sorted(LEDGERS)}", field="ledger")
    return spec.build(context, params)


# 问题线索台账 -----------------------------------------------------------------------------------
FLAG_COLUMNS = [Column("序号", INT, 6), Column("线索编号", TEXT, 30), Column("规则名称", TEXT, 18),
                Column("风险等级", TEXT, 8), Column("地区", TEXT, 24), Column("业务日期", DATE, 12),
                Column("涉及金额（元）", MONEY, 15), Column("问题描述", TEXT, 48),
                Column("责任人", TEXT, 30), Column("状态", TEXT, 16)]
FLAG_STATUS = {"standing": "在办", "withdrawn": "已撤销", "all": "全部"}


def flag_amount(flag: dict) -> int | None:
    """The money a flag is about: the payment's, a split's total, the idle amount."""
    detail = flag.get("detail") or {}
    for key in ("amount_fen", "total_fen", "idle_fen"):
        if isinstance(detail.get(key), int):
            return detail[key]
    return None


def all_flags(context: Context, region_code: str, params: Params) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        page = flag_queries.list_flags(context.db, region_code=region_code,
                                       date_from=params.date_from, date_to=params.date_to,
                                       status=params.status, after=after, limit=FLAG_PAGE)
        out += page
        if len(page) < FLAG_PAGE:
            return out
        after = page[-1]["flag_id"]


def all_cases(context: Context, region_code: str) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        page = cq.list_cases(context.db, region_code=region_code, after=after, limit=CASE_PAGE)
        out += page["items"]
        if page["next_after"] is None:
            return out
        after = page["next_after"]


def responsible(context: Context, flag: dict) -> str:
    """Who signed what the flag questions: each signer with the role they signed in."""
    positions = [flag["log_position"]] + [e["ref"] for e in flag.get("evidence") or []
                                          if e.get("kind") == "event"]
    roles: dict[str, list[str]] = {}
    for position in dict.fromkeys(positions):
        for s in context.event_signers(position):
            if s["official_id"] in flag.get("signers", []):
                roles.setdefault(s["official_id"], [])
                if s["role"] not in roles[s["official_id"]]:
                    roles[s["official_id"]].append(s["role"])
    out = []
    for oid in flag.get("signers") or []:
        name = context.official_name(oid) or oid[:8]
        said = "、".join(SIGN_ROLE_ZH.get(r, r) for r in roles.get(oid, []))
        out.append(f"{name}（{said}）" if said else name)
    return "；".join(out)


def flags_ledger(context: Context, params: Params) -> Ledger:
    region = context.region_in_reach(params.region)
    if params.status not in FLAG_STATUS:
        raise InvalidInput("must be standing, withdrawn or all", field="status")
    found = all_flags(context, region["code"], params)
    cases = all_cases(context, region["code"])
    named: dict[str, list[dict]] = {}
    for c in cases:
        for flag_id in c["flag_ids"] or []:
            named.setdefault(flag_id, []).append(c)
    leads_of = lead_queries.leads_by_source(context.db, [f["flag_id"] for f in found])
    rows = []
    for n, f in enumerate(found, 1):
        if not f["standing"]:
            state = "已撤销"
        elif f["flag_id"] in named:
            state = "已立案（" + "、".join(c["case_no"] for c in named[f["flag_id"]]) + "）"
        else:
            state = "在办"
        state = lead_state(state, leads_of.get(f["flag_id"]))
        rows.append([n, f["flag_id"], RULE_ZH.get(f["rule_id"], f["rule_id"]),
                     SEVERITY_ZH.get(f["severity"], f["severity"]),
                     context.label(f.get("region_code")), f.get("effective_date"),
                     flag_amount(f), f["explanation_zh"], responsible(context, f), state])
    money = FLAG_COLUMNS.index(next(c for c in FLAG_COLUMNS if c.kind == MONEY))
    high = sum(1 for f in found if f["severity"] == "high")
    total_row: list[Any] = [None] * len(FLAG_COLUMNS)
    total_row[0:2] = [None, TOTAL]
    total_row[2] = f"{len(found)} 条（高风险 {high} 条）"
    total_row[money] = sum_fen(rows, money)
    scope = "；".join(x for x in (f"状态：{FLAG_STATUS[params.status]}", params.dates()) if x)
    sheet = Sheet("问题线索台账", f"{region['name']}问题线索台账", FLAG_COLUMNS, rows, total_row,
                  notes=[("涉及金额为线索所涉支付的金额（拆分支付为各笔合计，资金滞留为滞留金额）；"
                         "无金额的线索不计入合计。"),
                         "责任人为线索所涉步骤的签字人及其签字角色（谁签字谁负责）。"],
                  scope=scope)
    shown = [Read("flag", f["flag_id"], f.get("region_path") or {}) for f in found]
    shown += [Read("case", c["case_id"], c["region_path"])
              for c in {c["case_id"]: c for cs in named.values() for c in cs}.values()]
    return Ledger("flags", "问题线索台账", region["name"], region["code"], context.on, [sheet],
                  shown)


def lead_state(state: str, lead: dict | None) -> str:
    """The flag's state with its lead's disposition (线索处置), if a lead was raised."""
    if lead is None:
        return state
    parts = [f"线索{lead['lead_no']}：{STATUS_ZH.get(lead['status'], lead['status'])}"]
    if lead.get("unit_code"):
        parts.append(f"交办{lead['unit_code']}（期限{lead['deadline']}）")
    if lead.get("verdict"):
        parts.append(f"核实{VERDICT_ZH.get(lead['verdict'], lead['verdict'])}")
    if lead.get("disposition"):
        parts.append(DISPOSITION_ZH.get(lead["disposition"], lead["disposition"])
                     + (f"（{lead['case_no']}）" if lead.get("case_no") else ""))
    return f"{state}；" + "，".join(parts)


# 整改台账 ---------------------------------------------------------------------------------------
RECT_COLUMNS = [Column("序号", INT, 6), Column("案号", TEXT, 22), Column("整改事项", TEXT, 40),
                Column("责任单位", TEXT, 14), Column("责任人", TEXT, 16), Column("期限", DATE, 12),
                Column("状态", TEXT, 18), Column("销号日期", DATE, 12),
                Column("整改佐证", TEXT, 30)]


def rectification_state(item: dict) -> tuple[str, str]:
    """(已整改 | 持续整改 | 未整改, the state as written in the ledger)."""
    status, days = item["status"], item["days_overdue"]
    if status == "completed":
        return RECTIFIED, RECTIFIED
    if status == "completed_late":
        return RECTIFIED, f"{RECTIFIED}（逾期{days}天）"
    if status == "overdue":
        return NOT_RECTIFIED, f"{NOT_RECTIFIED}（逾期{days}天）"
    return ONGOING, ONGOING


def rectification_ledger(context: Context, params: Params) -> Ledger:
    region = context.region_in_reach(params.region)
    found = cq.rectification_items(context.db, region_code=region["code"], as_of=params.as_of)
    rows, counts = [], dict.fromkeys((RECTIFIED, ONGOING, NOT_RECTIFIED), 0)
    for n, item in enumerate(found["items"], 1):
        kind, state = rectification_state(item)
        counts[kind] += 1
        who = item["official"]
        rows.append([n, item["case_no"], item["problem"], item["unit_code"],
                     who.get("name") or who.get("code") or who["official_id"], item["deadline"],
                     state, item["completed_on"], item["completion_evidence"]])
    total_row = [None, TOTAL, f"共{len(rows)}项：" + "，".join(
        f"{k}{v}项" for k, v in counts.items()), None, None, None, None, None, None]
    sheet = Sheet("整改台账", f"{region['name']}整改台账", RECT_COLUMNS, rows, total_row,
                  notes=[("已整改：已完成并销号（逾期完成的注明逾期天数）；持续整改：未完成、"
                         "未到期限；未整改：未完成且已过期限。")],
                  scope=f"截至 {found['as_of'] or '—'}（判定是否逾期的日期）")
    shown = [Read("case", i["case_id"], i["region_path"])
             for i in {i["case_id"]: i for i in found["items"]}.values()]
    shown += [r for oid in dict.fromkeys(i["official"]["official_id"] for i in found["items"])
              if (r := context.official_read(oid)) is not None]
    return Ledger("rectification", "整改台账", region["name"], region["code"], context.on,
                  [sheet], shown)


# 扶贫资金总台账 ---------------------------------------------------------------------------------
MONEY_HEADERS = ["下达（元）", "分配（元）", "支付（拨付）（元）", "追回（元）", "结余（元）"]
FUND_COLUMNS = [Column("序号", INT, 6), Column("账户", TEXT, 26), Column("地区", TEXT, 22),
                Column("资金来源", TEXT, 10), Column("用途", TEXT, 24),
                *[Column(h, MONEY, 16) for h in MONEY_HEADERS], Column("支出进度", PERCENT, 10)]
ACCOUNT_COLUMNS = [c for c in FUND_COLUMNS if c.header != "用途"]
SUMMARY_COLUMNS = [Column("资金来源", TEXT, 16),
                   *[Column(h.replace("（元）", "（万元）"), WAN, 14) for h in MONEY_HEADERS],
                   Column("支出进度", PERCENT, 10)]


def account_flows(db: Any, account_ids: list[str]) -> dict[str, list[dict]]:
    """account → its money per purpose (``balance_flows``, kept by the balances projection:
    no query of ``projections.queries`` answers per account × purpose yet; this one
    belongs beside ``balance_summary``)."""
    f = bal.flows
    out: dict[str, list[dict]] = {}
    with connected(db) as conn:
        for i in range(0, len(account_ids), 500):
            q = (select(f.c.account_id, f.c.purpose, *[total(f.c[c]).label(c) for c in bal.MONEY])
                 .where(f.c.account_id.in_(account_ids[i:i + 500]))
                 .group_by(f.c.account_id, f.c.purpose).order_by(f.c.account_id, f.c.purpose))
            for r in conn.execute(q).mappings():
                out.setdefault(r["account_id"], []).append(dict(r))
    return out


def _money(r: dict) -> list[int]:
    """下达, 分配, 支付, 追回, 结余 of a row of balances (an account, a flow, a sum)."""
    into = r["received_fen"] + r["allocated_in_fen"]
    return [into, r["allocated_down_fen"], r["paid_out_fen"], r["recovered_fen"],
            into - r["allocated_down_fen"] - r["paid_out_fen"] + r["recovered_fen"]]


def _with_progress(money: list[int]) -> list[Any]:
    return [*money, ratio(money[2], money[0])]


def funds_ledger(context: Context, params: Params) -> Ledger:
    region = context.region_in_reach(params.region)
    code = region["code"]
    accounts = balances(context.db, region_code=code)
    flows = account_flows(context.db, [a["account_id"] for a in accounts])
    detail, per_account = [], []
    for a in accounts:
        where = context.label(a["region_code"])
        source = FUND_ZH.get(a["fund_source"], a["fund_source"])
        for f in flows.get(a["account_id"], []):
            detail.append([len(detail) + 1, a["name"], where, source,
                           PURPOSE_ZH.get(f["purpose"], f["purpose"]),
                           *_with_progress(_money(f))])
        per_account.append([len(per_account) + 1, a["name"], where, source,
                            *_with_progress(_money(a))])
    first = FUND_COLUMNS.index(next(c for c in FUND_COLUMNS if c.kind == MONEY))
    summary = balance_summary(context.db, code)
    totals = _money(summary["total"])

    def total_row(rows: list[list[Any]], at: int) -> list[Any]:
        """合计: the accounts counted, each amount summed in fen from ``at`` on."""
        sums = [sum_fen(rows, at + i) for i in range(len(MONEY_HEADERS))]
        return [None, TOTAL, f"{len(accounts)} 个账户", *[None] * (at - 3), *sums,
                ratio(sums[2], sums[0])]

    sheet = Sheet("总台账", f"{region['name']}扶贫资金总台账", FUND_COLUMNS, detail,
                  total_row(detail, first), scope="截至本表填报时的全部收支",
                  notes=[("下达：收到的资金和上级下达到本账户的资金；分配：本账户下达到下级账户的"
                         "资金；支付（拨付）：发放到户、拨付到项目的资金；追回：追回到本账户的"
                         "资金；结余 = 下达 − 分配 − 支付 + 追回；支出进度 = 支付 ÷ 下达。"),
                         ("资金以统筹用途下达、按具体用途支付时，各用途行的结余为该用途的收支"
                         "净额（可为负数），账户结余为其各用途行之和（见“按账户”表）。")])
    accounts_sheet = Sheet("按账户", f"{region['name']}扶贫资金总台账（按账户）",
                           ACCOUNT_COLUMNS, per_account,
                           total_row(per_account, first - 1),
                           machine=False)
    by_source = [[FUND_ZH.get(s["fund_source"], s["fund_source"]), *_with_progress(_money(s))]
                 for s in summary["by_fund_source"]]
    whole = money_of(context.db, code)
    summary_sheet = Sheet(
        "汇总（万元）", f"{region['name']}扶贫资金汇总", SUMMARY_COLUMNS, by_source,
        [TOTAL, *_with_progress(totals)], machine=False,
        notes=[(f"各账户之间的下达在“下达”和“分配”中各计一次。不重复计算：全域到位资金 "
               f"{_wan_text(whole['into'])} 万元，发放 {_wan_text(whole['paid'])} 万元，"
               f"支出进度 {_percent_text(ratio(whole['paid'], whole['into']))}。")])
    shown = [context.region_read(region)]
    shown += [Read("account", a["account_id"], context.region(a["region_code"])["path"])
              for a in accounts]
    return Ledger("funds", "扶贫资金总台账", region["name"], code, context.on,
                  [sheet, accounts_sheet, summary_sheet], shown)


def _wan_text(fen: int) -> str:
    return f"{wan(fen).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def _percent_text(value: Any) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


LEDGERS: dict[str, Spec] = {
    "flags": Spec("问题线索台账", flags_ledger,
                  "region; date_from, date_to; status (standing, withdrawn, all)"),
    "rectification": Spec("整改台账", rectification_ledger, "region; as_of"),
    "funds": Spec("扶贫资金总台账", funds_ledger, "region"),
    "payments": Spec("发放清册", households.payments_ledger,
                     "region or account; date_from, date_to"),
    "household": Spec("一户一档", households.household_ledger, "household (id or code)"),
}
