"""Ledgers of households: the 发放清册 and the 一户一档.

* **发放清册** (``payments``): the payments to households (到户) of one account, or of every
  account that pays households of a region — the region's own accounts and those of the
  levels above it (村账乡代管: a township account pays its villages' households) — in a
  range of business dates: each with the household's code, head, village, the head's ID
  number and the household's bank account as the store has them (keyed hashes, masked by
  the reader's role: ``layout.mask_id``), the purpose, amount, date, document number and
  who prepared, reviewed and approved it, and what came back of it (追回 / 冲正 / 退回).
  Read from the read models, set-based (a county's 250,000 payments in seconds): the
  payments and what came back of them from the money trace (``trace_movements``), the
  payees from the register (``register_households``: code, head, village, the head's ID
  hash and the bank hash), the signers from the responsibility read model
  (``resp_signatures``, by log position), joined in one query read in chunks; the
  signers' names are the officials'.
* **一户一档** (``household``): one household's file — its register entry
  (``projections.queries.household_view``), members (ID numbers masked), every signed
  step with its signers and their positions (``projections.chains.household_chain``), and
  the money it received by policy and year and payment by payment
  (``projections.chains.household_money``).

The members and their ID hashes are only in the household aggregate (``Zhuisu.load``): the
一户一档 loads it; the register keeps only the head's ID hash and the bank hash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select

from access.reads import Read
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from exchange.labels import (
    CAUSE_ZH,
    HOUSEHOLD_STATUS_ZH,
    PURPOSE_ZH,
    RELATION_ZH,
    STEP_ZH,
)
from exchange.layout import (
    DATE,
    INT,
    MONEY,
    TEXT,
    TOTAL,
    Column,
    Ledger,
    Sheet,
    mask_bank,
    mask_id,
    sum_fen,
    yuan,
)
from exchange.sources import Context, Params, by_role, signer
from projections import chains
from projections import money_trace as trace
from projections import register as reg
from projections import responsibility as resp
from projections.queries import balances, connected, household_view, total

SIGNED = ["经办", "审核", "审批"]
COMING_BACK = {"FundAccount.Recovered": "追回", "FundAccount.Reversed": "冲正",
               "FundAccount.PaymentReturned": "退回"}
BACK_KINDS = {"recovered": "追回", "reversed": "冲正", "returned": "退回"}  # trace_movements
ROLES = ["preparer", "reviewer", "approver"]


def _day(value: Any) -> str | None:
    return None if value is None else str(value)[:10]


def _head_hash(household: Household) -> str | None:
    return next((m.get("id_number_hash") for m in household.members
                 if m.get("relation") == "head"), None)


def _came_back(back: dict[str, int]) -> str | None:
    """'已追回 30.01 元' / '已冲正 …' / '已退回 …', from what came back of a payment."""
    return "；".join(f"已{how} {yuan(fen):,} 元" for how, fen in back.items() if fen) or None


# 发放清册 ---------------------------------------------------------------------------------------
PAY_COLUMNS = [Column("序号", INT, 6), Column("户编号", TEXT, 20), Column("户主姓名", TEXT, 10),
               Column("所在村", TEXT, 22), Column("身份证号", TEXT, 22), Column("银行账号", TEXT, 16),
               Column("用途", TEXT, 20), Column("金额（元）", MONEY, 14), Column("发放日期", DATE, 12),
               Column("文号", TEXT, 18), *[Column(s, TEXT, 12) for s in SIGNED],
               Column("备注", TEXT, 18)]


@dataclass(frozen=True)
class Payer:
    """An account that pays households, as the read models know it (loading the account
    itself would replay its snapshot: the state of every payment it made)."""

    id: str
    name: str
    region_path: dict[str, str]


def paying_accounts(context: Context, region: dict) -> list[Payer]:
    """The accounts that pay households of ``region``: those in its subtree and the own
    accounts of each level above it, each with money paid out."""
    found = balances(context.db, region_code=region["code"])
    for code in region["path"].values():
        if code != region["code"]:
            found += [a for a in balances(context.db, region_code=code)
                      if a["region_code"] == code]
    payers = {a["account_id"]: a for a in found if a["paid_out_fen"]}
    return [Payer(aid, a["name"], dict(context.region(a["region_code"], "account")["path"]))
            for aid, a in payers.items()]


FETCH = 5000  # rows of the 发放清册 fetched at a time


def _payments(context: Context, account_ids: list[str], first: str | None, last: str | None,
              region: dict | None) -> Iterator[Any]:
    """The payments to households of ``account_ids`` (business dates ``first`` … ``last``,
    payees in ``region``), each with its payee's register entry and its three signers, in
    the ledger's order (date, 户编号, movement): one query, read ``FETCH`` rows at a time."""
    m, h = trace.movements, reg.households
    signed = {role: resp.signatures.alias(f"s_{role}") for role in ROLES}
    joined = m.join(h, h.c.household_id == m.c.payee_id)
    for role, s in signed.items():
        joined = joined.outerjoin(s, and_(s.c.log_position == m.c.position, s.c.role == role))
    q = (select(m.c.account_id, m.c.movement_id, m.c.payee_id, m.c.amount_fen,
                m.c.effective_date, m.c.purpose, m.c.document_no, h.c.code, h.c.head_name,
                h.c.head_id_hash, h.c.bank_account_hash, *[h.c[lv] for lv in reg.LEVELS],
                *[s.c.official_id.label(role) for role, s in signed.items()])
         .select_from(joined)
         .where(m.c.account_id.in_(account_ids), m.c.kind == "disbursed",
                m.c.payee_kind == "household"))
    if first:
        q = q.where(m.c.effective_date >= dt.date.fromisoformat(first))
    if last:
        q = q.where(m.c.effective_date <= dt.date.fromisoformat(last))
    if region is not None:
        q = q.where(h.c[region["level"]] == region["code"])
    with connected(context.db) as conn:
        byte_order = conn.dialect.name == "postgresql"  # as Python sorts str: code points
        code, movement = ((h.c.code.collate("C"), m.c.movement_id.collate("C")) if byte_order
                          else (h.c.code, m.c.movement_id))
        q = q.order_by(m.c.effective_date, code, movement)
        result = conn.execution_options(yield_per=FETCH).execute(q)
        for part in result.partitions(FETCH):
            yield from part


def _coming_back(context: Context, account_ids: list[str]) -> dict[tuple[str, str], dict]:
    """(account, payment) → fen 追回 / 冲正 / 退回 of it (the money trace's movements that
    name the payment: few, read at once)."""
    m = trace.movements
    back: dict[tuple[str, str], dict[str, int]] = {}
    with connected(context.db) as conn:
        for r in conn.execute(
                select(m.c.account_id, m.c.of_movement_id, m.c.kind, total(m.c.amount_fen))
                .where(m.c.account_id.in_(account_ids), m.c.kind.in_(list(BACK_KINDS)),
                       m.c.of_movement_id.is_not(None))
                .group_by(m.c.account_id, m.c.of_movement_id, m.c.kind)):
            came = back.setdefault((r[0], r[1]), dict.fromkeys(COMING_BACK.values(), 0))
            came[BACK_KINDS[r[2]]] += r[3]
    return back


def payments_ledger(context: Context, params: Params) -> Ledger:
    """The 发放清册, from the read models: the money trace's payments to households, the
    register's entries of their payees (head, village, hashes), the signatures of the
    responsibility read model, the official directory's names — joined in SQL."""
    shown: list[Read] = []
    region = None
    if params.region:
        region = context.region_in_reach(params.region)
        shown.append(context.region_read(region))
    if params.account:
        account = context.app.load(FundAccount, params.account, "account")
        context.covers(account.region_path, f"账户 {account.name}", "account")
        accounts = [Payer(str(account.id), account.name, dict(account.region_path))]
        unit = region or context.region(account.region_code)
    elif region is not None:
        accounts = paying_accounts(context, region)
        unit = region
    else:
        raise InvalidInput("give the region or the account of the payments", field="region")
    ids = [a.id for a in accounts]
    back = _coming_back(context, ids) if ids else {}
    names: dict[str | None, str | None] = {None: None}

    def name(official_id: str | None) -> str | None:
        if official_id not in names:
            names[official_id] = signer({"official_id": official_id,
                                         "name": context.official_name(official_id)})
        return names[official_id]

    # what rows share is made once and shared (a county's 250,000 rows in little memory)
    villages: dict[str, str | None] = {}
    payees: dict[str, dict[str, str]] = {}  # payee → region path, in order of first payment
    payee_cells: dict[str, tuple] = {}  # payee → (code, head, village, ID, bank) as shown
    texts: dict[Any, Any] = {}  # purposes, dates, document numbers
    rows = []
    paid = _payments(context, ids, _day(params.date_from), _day(params.date_to), region) \
        if ids else iter(())
    for n, r in enumerate(paid, 1):
        (account_id, movement_id, payee_id, amount, day, purpose, document_no, code, head,
         id_hash, bank_hash, *path, preparer, reviewer, approver) = r
        cells = payee_cells.get(payee_id)
        if cells is None:
            payees[payee_id] = {lv: c for lv, c in zip(reg.LEVELS, path) if c is not None}
            village = path[-1]
            if village not in villages:
                villages[village] = context.label(village)
            cells = payee_cells[payee_id] = (code, head, villages[village],
                                             mask_id(id_hash, context.role),
                                             mask_bank(bank_hash))
        shown_purpose = texts.get(("purpose", purpose))
        if shown_purpose is None:
            shown_purpose = texts[("purpose", purpose)] = PURPOSE_ZH.get(purpose, purpose)
        shown_day = texts.get(day)
        if shown_day is None:
            shown_day = texts[day] = _day(day)
        came = back.get((account_id, movement_id))
        rows.append([n, *cells, shown_purpose, amount, shown_day,
                     texts.setdefault(document_no, document_no), name(preparer),
                     name(reviewer), name(approver), _came_back(came) if came else None])
    amount = PAY_COLUMNS.index(next(c for c in PAY_COLUMNS if c.kind == MONEY))
    total_row: list[Any] = [None] * len(PAY_COLUMNS)
    total_row[1:3] = [TOTAL, f"{len(rows)} 笔"]
    total_row[3] = f"{len(payees)} 户"
    total_row[amount] = sum_fen(rows, amount)
    what = f"账户：{accounts[0].name}" if params.account else "本地区农户的到户发放"
    scope = "；".join(x for x in (what, params.dates()) if x)
    title = (f"{accounts[0].name} 扶贫资金发放清册" if params.account
             else f"{unit['name']}扶贫资金发放清册")
    sheet = Sheet("发放清册", title, PAY_COLUMNS, rows, total_row, scope=scope, notes=[
        ("身份证号、银行账号：系统只保存其密钥散列（不保存号码本身），此处为散列的脱敏片段，"
        "可与同一系统导出的其他台账比对。"),
        "金额为发放金额；已追回或冲正的在备注中注明。"])
    shown += [Read("account", a.id, dict(a.region_path)) for a in accounts]
    shown += [Read("household", hid, path) for hid, path in payees.items()]
    return Ledger("payments", "发放清册", unit["name"], unit["code"], context.on, [sheet], shown)


# 一户一档 ---------------------------------------------------------------------------------------
FIELD_COLUMNS = [Column("项目", TEXT, 20), Column("内容", TEXT, 56)]
MEMBER_COLUMNS = [Column("序号", INT, 6), Column("姓名", TEXT, 12), Column("与户主关系", TEXT, 12),
                  Column("身份证号", TEXT, 24)]
STEP_COLUMNS = [Column("序号", INT, 6), Column("业务日期", DATE, 12), Column("步骤", TEXT, 20),
                Column("办理后状态", TEXT, 14), *[Column(s, TEXT, 26) for s in SIGNED],
                Column("见证", TEXT, 26), Column("日志位置", INT, 10)]
POLICY_COLUMNS = [Column("年度", TEXT, 8), Column("用途", TEXT, 24), Column("笔数", INT, 8),
                  Column("发放（元）", MONEY, 14), Column("追回冲正（元）", MONEY, 14),
                  Column("净额（元）", MONEY, 14)]
PAYMENT_COLUMNS = [Column("序号", INT, 6), Column("发放日期", DATE, 12), Column("用途", TEXT, 20),
                   Column("金额（元）", MONEY, 14), Column("追回冲正（元）", MONEY, 14),
                   Column("净额（元）", MONEY, 14), Column("文号", TEXT, 18),
                   Column("资金来源", TEXT, 24), *[Column(s, TEXT, 12) for s in SIGNED]]


def find_household(context: Context, ref: str | None) -> Household:
    """A household by its id, or by its code (户编号)."""
    if not ref or not ref.strip():
        raise InvalidInput("give the household (its id or 户编号)", field="household")
    ref = ref.strip()
    if len(ref) > 64:
        raise InvalidInput("a household's id or code has at most 64 characters",
                           field="household")
    try:
        hid = UUID(ref)
    except ValueError:
        hid = Household.create_id(ref)
    try:
        return context.app.load(Household, hid, "household")
    except NotFound as exc:
        raise NotFound(f"no household {ref}", field="household") from exc


def household_ledger(context: Context, params: Params) -> Ledger:
    household = find_household(context, params.household)
    context.covers(household.region_path, f"农户 {household.code}", "household")
    hid = str(household.id)
    village = context.region(household.village_code)
    entry = household_view(context.db, hid)
    chain = chains.household_chain(context.db, hid)
    money = chains.household_money(context.db, hid)
    path = household.region_path
    causes = "、".join(CAUSE_ZH.get(c, c) for c in entry["secondary_causes"] or []) or None
    helper = (context.official_name(entry["helper_official_id"])
              if entry["helper_official_id"] else None)
    facts = [
        ["户编号", household.code], ["户主姓名", entry["head_name"]],
        ["户主身份证号", mask_id(_head_hash(household), context.role)],
        ["所在地区", " / ".join(x for x in (context.label(path.get("county")),
                                         context.label(path.get("township")),
                                         context.label(household.village_code)) if x)],
        ["当前状态", HOUSEHOLD_STATUS_ZH.get(entry["status"], entry["status"])],
        ["主要致贫原因", CAUSE_ZH.get(entry["main_cause"], entry["main_cause"])],
        ["其他致贫原因", causes], ["家庭人口", f"{entry['members_count']} 人"],
        ["人均纯收入（元）", f"{yuan(entry['income_per_capita_fen']):,}"],
        ["申请日期", entry["applied_on"]], ["纳入日期", entry["registered_on"]],
        ["脱贫日期", entry["exited_on"]], ["清退日期", entry["removed_on"]],
        ["清退原因", entry["removal_reason"]], ["返贫次数", str(entry["relapse_count"])],
        ["帮扶责任人", helper], ["银行账号", mask_bank(household.bank_account_hash)],
        ["累计享受资金（元）", (f"{yuan(money['net_fen']):,}（发放 {yuan(money['received_fen']):,}，"
                        f"追回冲正 {yuan(money['returned_fen']):,}）")]]
    about = Sheet("基本情况", f"{household.code} {entry['head_name']}户 一户一档",
                  FIELD_COLUMNS, [[k, v] for k, v in facts], notes=[
                      "身份证号、银行账号：系统只保存其密钥散列，此处为散列的脱敏片段。"])
    members = Sheet("家庭成员", "家庭成员", MEMBER_COLUMNS, [
        [n, m["name"], RELATION_ZH.get(m["relation"], m["relation"]),
         mask_id(m.get("id_number_hash"), context.role)]
        for n, m in enumerate(household.members, 1)],
        [None, TOTAL, f"{len(household.members)} 人", None])
    steps = Sheet("办理过程", "办理过程（谁签字谁负责）", STEP_COLUMNS, [
        [n, st["effective_date"], STEP_ZH.get(st["step"], st["step"]),
         HOUSEHOLD_STATUS_ZH.get(st.get("status_after") or "", st.get("status_after")),
         *[by_role(st["signatures"], position=True).get(r) for r in (*ROLES, "witness")],
         st["log_position"]]
        for n, st in enumerate(chain["steps"], 1)])
    payments = money["payments"]
    policy: dict[tuple[str, str], list[int]] = {}
    for p in payments:
        g = policy.setdefault((str(p["effective_date"])[:4], p["purpose"]), [0, 0, 0, 0])
        for i, v in enumerate((1, p["amount_fen"], p.get("returned_fen") or 0, p["net_fen"])):
            g[i] += v
    by_policy = [[year, PURPOSE_ZH.get(purpose, purpose), *g]
                 for (year, purpose), g in sorted(policy.items(), key=lambda kv: (
                     -int(kv[0][0]), kv[0][1]))]
    sums = [sum_fen(by_policy, i) for i in (2, 3, 4, 5)]
    policy_sheet = Sheet("按政策和年度", "享受资金（按政策和年度）", POLICY_COLUMNS, by_policy,
                         [TOTAL, None, *sums], machine=False)
    detail = []
    for n, p in enumerate(payments, 1):
        signers = by_role(p.get("signatures") or [])
        sources = "、".join(dict.fromkeys(
            s["receipt"].get("source") or s["receipt"].get("purpose") or ""
            for s in p.get("sources") or []))
        detail.append([n, p["effective_date"], PURPOSE_ZH.get(p["purpose"], p["purpose"]),
                       p["amount_fen"], p.get("returned_fen") or 0, p["net_fen"],
                       p.get("document_no"), sources or None,
                       *[signers.get(r) for r in ROLES]])
    detail_sheet = Sheet("资金明细", "享受资金明细", PAYMENT_COLUMNS, detail,
                         [None, None, TOTAL, *[sum_fen(detail, i) for i in (3, 4, 5)],
                          None, None, None, None, None])
    return Ledger("household", "一户一档", village["name"], village["code"], context.on,
                  [about, members, steps, policy_sheet, detail_sheet],
                  [Read("household", hid, dict(path))])
