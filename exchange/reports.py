"""检查报告 in the offices' layout: a case's report and a county's, as ledgers (``layout``).

What a report shows is gathered by ``inspection.reports`` from the read models
(``projections.read_side.ReadSide``): sheets of stable English field names and plain values,
money as integer fen.  Here the same data becomes two ``Ledger``\\ s, both written by
``exchange.layout`` (the one .xlsx and CSV writer):

* **for people** (.xlsx) — Chinese headers, a title row (``案件报告：<案号> <标题>``,
  ``<县名>问题线索与追回情况报告``), 填报单位 (the case's region, or the county) and
  填报日期, amounts in 元 with two decimals (the county's 概况 in 万元), a 合计 row wherever
  amounts add up, codes as text cells, and a sheet of the payments the report concerns
  (涉及支付): each with its payee household, the head's ID number and the household's bank
  account as the store has them (keyed hashes, masked for the reader's role:
  ``layout.mask_id``, ``layout.mask_bank``) and who prepared, reviewed and approved it;
  then each payment's responsibility chain (责任链: 谁签字谁负责, every signature with the
  signer's name, position and key);
* **for machines** (CSV) — every sheet of ``inspection.reports`` as it is, one after the
  other, each row led by its sheet's name (the first row of a sheet its header): English
  field names, integer fen, lists as JSON — what ``read_csv(data, sheets=True)`` reads back.

Case sheets: 案件概况, 涉案人员, 证据, 认定事实, 问责, 追回明细, 按责任人追回, 整改, 涉及支付, 责任链.
County sheets: 概况, 问题线索, 案件统计, 案件清单, 按单位追回, 按责任人追回, 三率一度, 整改逾期,
涉及支付, 责任链.

``Report.shown(fmt)`` is what the access log records: the cases and flags, and for the
.xlsx the payee households whose masked numbers it shows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from access.reads import Read
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from exchange.labels import (
    POSITION_ZH,
    PURPOSE_ZH,
    RULE_ZH,
    SEVERITY_ZH,
    SIGN_ROLE_ZH,
    STEP_ZH,
)
from exchange.layout import (
    DATE,
    INT,
    MONEY,
    PERCENT,
    TEXT,
    TOTAL,
    Column,
    Ledger,
    Sheet,
    mask_bank,
    mask_id,
    ratio,
    render,
    sum_fen,
    wan,
    yuan,
)
from exchange.sources import Context, by_role
from inspection import reports as gathered
from projections.read_side import ReadSide

# the words of the console's case screens (console.screens.cases), for a file that leaves
CASE_TYPE_ZH = {"false_claim": "虚报冒领", "diversion": "截留挪用", "favouritism": "优亲厚友",
                "embezzlement": "贪污侵占", "idle_funds": "资金闲置（滞留）",
                "fake_exit": "数字脱贫 / 虚假脱贫", "wrong_identification": "识别不精准",
                "duty_neglect": "失职失责", "other": "其他"}
CASE_STATUS_ZH = {"open": "在办", "rectified": "已整改到位", "closed": "已结案"}
ACTION_ZH = {"admonition_talk": "诫勉谈话", "criticism": "通报批评", "warning": "警告",
             "serious_warning": "严重警告 / 记过", "demotion": "撤销职务 / 降级",
             "dismissal": "开除", "transfer_to_prosecution": "移送司法机关"}
BASIS_ZH = {"subject": "直接当事人", "oversight": "一案双查"}
EVIDENCE_ZH = {"event": "事件（日志位置）", "household": "农户", "official": "干部",
               "payment": "支付", "account": "资金账户", "flag": "问题线索", "document": "文书"}
ITEM_STATUS_ZH = {"open": "整改中", "overdue": "逾期未完成", "completed": "已完成",
                  "completed_late": "逾期完成"}
PAYEE_ZH = {"household": "农户", "project": "项目", "supplier": "供应商"}
PART_ZH = {"payment": "支付", "funding": "资金来源", "later": "追回 / 冲正",
           "payee registration": "收款户识别", "not found": "未找到该支付"}
RESPONSIBILITY_ZH = {"first": "第一责任人", "direct": "直接责任人", "leading": "领导责任",
                     "handling": "经办责任"}
FIGURE_ZH = {"incidence": "贫困发生率", "wrong_exit": "错退率", "missed": "漏评率",
             "satisfaction": "群众认可度"}
CHAIN_STEP_ZH = {**STEP_ZH, "FundAccount.Received": "收到资金", "FundAccount.Allocated": "下达（分配）"}
AMOUNTS = ["应追回（元）", "已追回（元）", "未追回（元）"]  # ordered, recovered, outstanding
MONEY_FIELDS = gathered.MONEY
SIGNED = ["经办", "审核", "审批"]
ROLES = ["preparer", "reviewer", "approver"]


@dataclass
class Report:
    """A report for people (``ledger``, .xlsx) and for machines (``data``, CSV)."""

    ledger: Ledger
    data: Ledger
    reads: list[Read]  # the cases and flags it shows
    payees: list[Read] = field(default_factory=list)  # households only the .xlsx shows

    def render(self, fmt: str) -> bytes:
        return render(self.data if fmt == "csv" else self.ledger, fmt)

    def shown(self, fmt: str) -> list[Read]:
        return self.reads + (self.payees if fmt == "xlsx" else [])


def case_report(context: Context, case_no: str, *, as_of: dt.date | None = None) -> Report:
    """A case's report (the caller has checked the reader may see the case)."""
    found = gathered.case_report(ReadSide(context.db), case_no, as_of=as_of)
    return _Layout(context, found).case()


def county_report(context: Context, county_code: str, *, year: int | None = None,
                  as_of: dt.date | None = None, chain_limit: int = 50) -> Report:
    """A county's report (the caller has checked the county is in the reader's reach)."""
    found = gathered.county_report(ReadSide(context.db), county_code, year=year, as_of=as_of,
                                   chain_limit=chain_limit)
    return _Layout(context, found).county(county_code)


# the CSV for machines -------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A value as the CSV holds it: lists and objects as JSON, dates in ISO form."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def data_ledger(found: gathered.Report, key: str, title: str, region: dict,
                on: dt.date) -> Ledger:
    """``inspection.reports``' sheets as they are: field names, integer fen."""
    sheets = [Sheet(s.name, s.name,
                    [Column(h, INT if h.endswith("_fen") else TEXT) for h in s.header],
                    [[plain(v) for v in row] for row in s.rows])
              for s in found.sheets]
    return Ledger(key, title, region["name"], region["code"], on, sheets)


# the workbook for people ----------------------------------------------------------------------
def _records(found: gathered.Report, name: str) -> list[dict[str, Any]]:
    sheet = found.sheet(name)
    return [dict(zip(sheet.header, row, strict=True)) for row in sheet.rows]


def _fields(found: gathered.Report, name: str) -> dict[str, Any]:
    return {r["field"]: r["value"] for r in _records(found, name)}


def _listed(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _yuan_text(fen: int | None) -> str | None:
    return None if fen is None else f"{yuan(fen):,}"


def _wan_text(fen: int | None) -> str | None:
    return None if fen is None else f"{wan(fen).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def _zh(names: dict[str, str], value: Any) -> Any:
    return names.get(value, value) if isinstance(value, str) else value


def _total(columns: list[Column], rows: list[list[Any]], label: str | None = None,
           at: int = 0) -> list[Any]:
    """合计 in column ``at`` (a text column) and ``label`` (a count) in the next text column
    after it; each amount summed in fen."""
    out: list[Any] = [sum_fen(rows, i) if c.kind == MONEY else None
                      for i, c in enumerate(columns)]
    out[at] = TOTAL
    if label is not None:
        out[next(i for i in range(at + 1, len(columns)) if columns[i].kind == TEXT)] = label
    return out


FIELD_COLUMNS = [Column("项目", TEXT, 22), Column("内容", TEXT, 60)]
PAYMENT_COLUMNS = [Column("序号", INT, 6), Column("支付编号", TEXT, 30), Column("付款账户", TEXT, 24),
                   Column("发放日期", DATE, 12), Column("用途", TEXT, 18),
                   Column("金额（元）", MONEY, 14), Column("收款户编号", TEXT, 20),
                   Column("户主姓名", TEXT, 10), Column("身份证号", TEXT, 22),
                   Column("银行账号", TEXT, 16), Column("文号", TEXT, 18),
                   *[Column(s, TEXT, 16) for s in SIGNED]]
CHAIN_COLUMNS = [Column("支付编号", TEXT, 30), Column("付款账户", TEXT, 24), Column("环节", TEXT, 12),
                 Column("步骤", TEXT, 16), Column("业务日期", DATE, 12), Column("日志位置", INT, 10),
                 Column("金额（元）", MONEY, 14), Column("签字角色", TEXT, 8),
                 Column("干部编号", TEXT, 24), Column("姓名", TEXT, 10), Column("职务", TEXT, 18),
                 Column("职务所在地区", TEXT, 22), Column("责任", TEXT, 12),
                 Column("签名密钥", TEXT, 20), Column("密钥吊销日期", DATE, 12)]
PAYMENT_NOTE = ("身份证号、银行账号：系统只保存其密钥散列（不保存号码本身），此处为散列的脱敏片段，"
                "可与同一系统导出的其他台账比对。经办、审核、审批为该笔支付的签字人（谁签字谁负责）。")
CHAIN_NOTE = ("每笔支付的每个签字一行：支付本身、其资金来源（下达、收到）、其后的追回或冲正、收款户的"
              "识别（纳入）程序；谁签字谁负责。金额为各步骤的金额，不合计。")


class _Layout:
    """Lays out one gathered report for ``context``'s reader."""

    def __init__(self, context: Context, found: gathered.Report):
        self.context, self.found = context, found
        self._accounts: dict[str, str] = {}
        self.payees: dict[str, Household] = {}

    # names --------------------------------------------------------------------------------
    def account(self, account_id: str | None) -> str | None:
        """An account's name (its id if it cannot be loaded)."""
        if not account_id:
            return None
        if account_id not in self._accounts:
            try:
                name = self.context.app.load(FundAccount, account_id, "account").name
            except (NotFound, InvalidInput):
                name = account_id
            self._accounts[account_id] = name
        return self._accounts[account_id]

    def payee(self, household_id: str) -> Household | None:
        if household_id not in self.payees:
            try:
                self.payees[household_id] = self.context.app.load(Household, household_id,
                                                                  "payee_id")
            except (NotFound, InvalidInput):
                return None
        return self.payees[household_id]

    def payee_codes(self) -> dict[str, str]:
        """household id → 户编号, of the payees the chains name."""
        return {c["payee"]["household_id"]: c["payee"].get("code")
                for _, _, c in self.found.chains if c and c.get("payee")
                and c["payee"].get("code")}

    # the sheets both reports have ------------------------------------------------------------
    def payments(self, title: str) -> Sheet:
        """涉及支付: each payment with its payee (numbers masked) and who signed it."""
        role = self.context.role
        rows = []
        for account, movement, chain in self.found.chains:
            if chain is None:
                rows.append([len(rows) + 1, movement, self.account(account), None, "未找到该支付",
                             *[None] * (len(PAYMENT_COLUMNS) - 5)])
                continue
            pay = chain["payment"]
            household = (self.payee(pay["payee_id"])
                         if pay.get("payee_kind") == "household" else None)
            head_hash = None if household is None else next(
                (m.get("id_number_hash") for m in household.members
                 if m.get("relation") == "head"), None)
            signers = by_role(pay.get("signatures") or [])
            rows.append([len(rows) + 1, pay["movement_id"], self.account(pay["account_id"]),
                         pay.get("effective_date"), PURPOSE_ZH.get(pay.get("purpose") or "",
                                                                  pay.get("purpose")),
                         pay.get("amount_fen"),
                         household.code if household else pay.get("payee_id"),
                         household.head_name if household else None,
                         mask_id(head_hash, role),
                         mask_bank(household.bank_account_hash) if household else None,
                         pay.get("document_no"), *[signers.get(r) for r in ROLES]])
        total = _total(PAYMENT_COLUMNS, rows, f"{len(rows)} 笔", at=1)
        return Sheet("涉及支付", title, PAYMENT_COLUMNS, rows, total, notes=[PAYMENT_NOTE])

    def chain(self, title: str) -> Sheet:
        rows = []
        for r in _records(self.found, "责任链 Chains"):
            rows.append([r["payment_movement_id"], self.account(r["payment_account_id"]),
                         PART_ZH.get(r["part"], r["part"]),
                         CHAIN_STEP_ZH.get(r["step"] or "", r["step"]), r["effective_date"],
                         r["log_position"], r["amount_fen"],
                         SIGN_ROLE_ZH.get(r["role"] or "", r["role"]), r["official_code"],
                         r["official_name"], _zh(POSITION_ZH, r["position"]),
                         self.context.label(r["position_region"]),
                         _zh(RESPONSIBILITY_ZH, r["responsibility"]), r["key_id"],
                         r["key_revoked_on"]])
        return Sheet("责任链", title, CHAIN_COLUMNS, rows, notes=[CHAIN_NOTE])

    def by_official(self, title: str, records: list[dict]) -> Sheet:
        columns = [Column("序号", INT, 6), Column("干部编号", TEXT, 24), Column("姓名", TEXT, 10),
                   Column("单位", TEXT, 16), *[Column(h, MONEY, 14) for h in AMOUNTS]]
        rows = [[n, e["code"], e["name"], e["unit_code"], *[e[k] for k in MONEY_FIELDS]]
                for n, e in enumerate((e for e in records if e["official_id"] != "total"), 1)]
        return Sheet("按责任人追回", title, columns, rows,
                     _total(columns, rows, f"{len(rows)} 人", at=1),
                     notes=["谁签字谁追回：每笔支付的应追回金额由其签字人平均分担，余下的分依次计给"
                            "审批、审核、经办人。"])

    def report(self, key: str, title: str, region: dict, sheets: list[Sheet]) -> Report:
        context = self.context
        data = data_ledger(self.found, key, title, region, context.on)
        ledger = Ledger(key, title, region["name"], region["code"], context.on, sheets)
        reads = [Read(kind, sid, dict(path)) for kind, sid, path in self.found.shown]
        payees = [Read("household", hid, dict(h.region_path)) for hid, h in self.payees.items()]
        ledger.shown = reads + payees
        data.shown = list(reads)
        return Report(ledger, data, reads, payees)

    # the case ----------------------------------------------------------------------------------
    def case(self) -> Report:
        found, label = self.found, self.context.label
        facts = _fields(found, "案件 Case")
        case_no = facts["case_no"]
        region = self.context.region(facts["region_code"])
        policies = "、".join(PURPOSE_ZH.get(p, p) for p in _listed(facts["suspend_policies"]))
        about = Sheet("案件概况", f"案件报告：{case_no} {facts['title']}", FIELD_COLUMNS, [
            ["案号", case_no], ["案件类型", _zh(CASE_TYPE_ZH, facts["case_type"])],
            ["标题", facts["title"]], ["地区", label(facts["region_code"])],
            ["状态", _zh(CASE_STATUS_ZH, facts["status"])], ["立案日期", facts["opened_on"]],
            ["案发日期", facts["incident_date"]], ["整改到位日期", facts["rectified_on"]],
            ["结案日期", facts["closed_on"]], ["暂停的政策", policies or "无"],
            ["问题线索", "、".join(_listed(facts["flag_ids"])) or None],
            ["录入人", facts["recorded_by"]], ["案情摘要", facts["summary"]],
            ["结论", facts["conclusion"]],
            *[[h, _yuan_text(facts[f"recovery_{k}"])] for h, k in zip(AMOUNTS, MONEY_FIELDS,
                                                                       strict=True)],
            ["整改判定日期", facts["rectification_as_of"]]])
        about.rows = [[k, None if v is None else str(v)] for k, v in about.rows]
        people_columns = [Column("序号", INT, 6), Column("干部编号", TEXT, 24),
                          Column("姓名", TEXT, 10), Column("单位", TEXT, 16),
                          Column("审查依据", TEXT, 12), Column("事由", TEXT, 30),
                          Column("地区", TEXT, 22), Column("职务", TEXT, 18),
                          Column("列入日期", DATE, 12)]
        people = Sheet("涉案人员", f"{case_no} 涉案人员（一案双查）", people_columns, [
            [n, p["code"], p["name"], p["unit_code"], _zh(BASIS_ZH, p["basis"]), p["reason"],
             label(p["region_code"]), _zh(POSITION_ZH, p["position"]), p["added_on"]]
            for n, p in enumerate(_records(found, "人员 Persons"), 1)])
        proof_columns = [Column("序号", INT, 6), Column("类型", TEXT, 14), Column("编号", TEXT, 30),
                         Column("账户", TEXT, 24), Column("说明", TEXT, 30),
                         Column("关联日期", DATE, 12)]
        proofs = Sheet("证据", f"{case_no} 证据", proof_columns, [
            [e["seq"], _zh(EVIDENCE_ZH, e["kind"]), e["ref"], self.account(e["account_id"]),
             e["note"], e["linked_on"]] for e in _records(found, "证据 Evidence")])
        finding_columns = [Column("序号", INT, 6), Column("编号", TEXT, 16),
                           Column("认定事实", TEXT, 48), Column("涉及金额（元）", MONEY, 14),
                           Column("认定日期", DATE, 12)]
        finding_rows = [[n, f["finding_id"], f["text"], f["amount_fen"], f["recorded_on"]]
                        for n, f in enumerate(_records(found, "事实 Findings"), 1)]
        findings = Sheet("认定事实", f"{case_no} 认定事实", finding_columns, finding_rows,
                         _total(finding_columns, finding_rows, f"{len(finding_rows)} 项", at=1))
        action_columns = [Column("序号", INT, 6), Column("干部编号", TEXT, 24),
                          Column("姓名", TEXT, 10), Column("问责方式", TEXT, 14),
                          Column("决定文号", TEXT, 20), Column("事由", TEXT, 30),
                          Column("决定日期", DATE, 12)]
        actions = Sheet("问责", f"{case_no} 问责", action_columns, [
            [n, a["code"], a["name"], _zh(ACTION_ZH, a["action"]), a["decision_no"],
             a["reason"], a["imposed_on"]]
            for n, a in enumerate(_records(found, "问责 Actions"), 1)])
        codes = self.payee_codes()
        line_columns = [Column("追回令", TEXT, 12), Column("下达日期", DATE, 12),
                        Column("行号", INT, 6), Column("付款账户", TEXT, 24),
                        Column("支付编号", TEXT, 30), Column("用途", TEXT, 18),
                        Column("收款方类型", TEXT, 10), Column("收款方", TEXT, 20),
                        Column("干部编号", TEXT, 24), Column("姓名", TEXT, 10),
                        Column("签字角色", TEXT, 8), *[Column(h, MONEY, 14) for h in AMOUNTS]]
        line_rows = [[r["order_id"], r["ordered_on"], r["line_no"], self.account(r["account_id"]),
                      r["movement_id"], _zh(PURPOSE_ZH, r["purpose"]),
                      _zh(PAYEE_ZH, r["payee_kind"]), codes.get(r["payee_id"], r["payee_id"]),
                      r["code"], r["name"], _zh(SIGN_ROLE_ZH, r["role"]),
                      *[r[k] for k in MONEY_FIELDS]]
                     for r in _records(found, "追回 Recovery")]
        lines = Sheet("追回明细", f"{case_no} 追回明细（谁签字谁追回）", line_columns, line_rows,
                      _total(line_columns, line_rows, f"{len(line_rows)} 行"))
        per_official = self.by_official(f"{case_no} 按责任人追回",
                                        _records(found, "追回 by official"))
        item_columns = [Column("序号", INT, 6), Column("事项编号", TEXT, 12),
                        Column("整改事项", TEXT, 36), Column("责任单位", TEXT, 16),
                        Column("责任人", TEXT, 16), Column("期限", DATE, 12),
                        Column("完成日期", DATE, 12), Column("状态", TEXT, 12),
                        Column("逾期天数", INT, 10), Column("整改佐证", TEXT, 30)]
        items = Sheet("整改", f"{case_no} 整改事项", item_columns, [
            [n, i["item_id"], i["problem"], i["unit_code"],
             i["official_name"] or i["official_code"], i["deadline"], i["completed_on"],
             _zh(ITEM_STATUS_ZH, i["status"]), i["days_overdue"], i["completion_evidence"]]
            for n, i in enumerate(_records(found, "整改 Rectification"), 1)],
            scope=f"截至 {facts['rectification_as_of'] or '—'}（判定是否逾期的日期）")
        sheets = [about, people, proofs, findings, actions, lines, per_official, items,
                  self.payments(f"{case_no} 涉及支付"), self.chain(f"{case_no} 责任链（谁签字谁负责）")]
        return self.report("case", "案件报告", region, sheets)

    # the county --------------------------------------------------------------------------------
    def county(self, code: str) -> Report:
        found, label = self.found, self.context.label
        facts = _fields(found, "概况 Summary")
        region = self.context.region(code)
        name = region["name"]
        title = f"{name}问题线索与追回情况报告"
        flags = facts["flags"]
        about = Sheet("概况", title, FIELD_COLUMNS, [
            ["县", label(code)], ["年度", facts["year"]], ["数据截至（日志时钟）", facts["log_clock"]],
            ["问题线索", f"{flags} 条" if isinstance(flags, int) else "未安装问题线索读模型"],
            ["案件", f"{facts['cases']} 件"],
            *[[h.replace("（元）", "（万元）"), _wan_text(facts[f"recovery_{k}"])]
              for h, k in zip(AMOUNTS, MONEY_FIELDS, strict=True)],
            ["逾期未完成的整改事项", f"{facts['rectification_items_overdue']} 项"],
            *([["责任链", facts["chains_shown"].replace(" of ", " / ").replace(
                " flagged payments", " 笔问题支付")]] if "chains_shown" in facts else [])])
        about.rows = [[k, None if v is None else str(v)] for k, v in about.rows]
        about.notes = ["金额以万元计，保留两位小数；明细见“按单位追回”“按责任人追回”（元）。"]
        flag_columns = [Column("规则名称", TEXT, 22), Column("规则编号", TEXT, 24),
                        Column("风险等级", TEXT, 8), Column("乡镇", TEXT, 22),
                        Column("线索数", INT, 8)]
        flag_rows = [[RULE_ZH.get(f["rule_id"], f["rule_id"]), f["rule_id"],
                      _zh(SEVERITY_ZH, f["severity"]), label(f["township"]) or "（未定）",
                      f["flags"]] for f in _records(found, "线索 Flags")]
        flag_sheet = Sheet("问题线索", f"{name}问题线索（按规则和乡镇）", flag_columns, flag_rows,
                           [TOTAL, None, None, None, sum(r[4] for r in flag_rows)])
        status_columns = [Column("状态", TEXT, 12), Column("案件类型", TEXT, 18),
                          Column("件数", INT, 8)]
        status_rows = [[_zh(CASE_STATUS_ZH, c["status"]), _zh(CASE_TYPE_ZH, c["case_type"]),
                        c["cases"]] for c in _records(found, "案件 Cases by status")]
        status = Sheet("案件统计", f"{name}案件（按状态和类型）", status_columns, status_rows,
                       [TOTAL, None, sum(r[2] for r in status_rows)])
        case_columns = [Column("序号", INT, 6), Column("案号", TEXT, 22), Column("案件类型", TEXT, 14),
                        Column("标题", TEXT, 30), Column("地区", TEXT, 22), Column("状态", TEXT, 10),
                        Column("立案日期", DATE, 12), Column("整改到位日期", DATE, 12),
                        Column("结案日期", DATE, 12)]
        listing = Sheet("案件清单", f"{name}案件清单", case_columns, [
            [n, c["case_no"], _zh(CASE_TYPE_ZH, c["case_type"]), c["title"],
             label(c["region_code"]), _zh(CASE_STATUS_ZH, c["status"]), c["opened_on"],
             c["rectified_on"], c["closed_on"]]
            for n, c in enumerate(_records(found, "案件 Cases"), 1)])
        unit_columns = [Column("序号", INT, 6), Column("责任单位", TEXT, 16),
                        *[Column(h, MONEY, 14) for h in AMOUNTS], Column("案件", TEXT, 30)]
        unit_rows = [[n, u["unit_code"], *[u[k] for k in MONEY_FIELDS], u["cases"]]
                     for n, u in enumerate((u for u in _records(found, "追回 by unit")
                                            if u["unit_code"] != "total"), 1)]
        units = Sheet("按单位追回", f"{name}追回情况（按责任单位）", unit_columns, unit_rows,
                      _total(unit_columns, unit_rows, f"{len(unit_rows)} 个单位", at=1))
        officials = self.by_official(f"{name}追回情况（按责任人）",
                                     _records(found, "追回 by official"))
        rates = self.rates(f"{name}三率一度（{facts['year']}年，按乡镇）")
        overdue_columns = [Column("序号", INT, 6), Column("案号", TEXT, 22),
                           Column("事项编号", TEXT, 12), Column("整改事项", TEXT, 36),
                           Column("责任单位", TEXT, 16), Column("责任人", TEXT, 24),
                           Column("期限", DATE, 12), Column("逾期天数", INT, 10)]
        overdue = Sheet("整改逾期", f"{name}逾期未完成的整改事项", overdue_columns, [
            [n, i["case_no"], i["item_id"], i["problem"], i["unit_code"], i["official_code"],
             i["deadline"], i["days_overdue"]]
            for n, i in enumerate(_records(found, "整改逾期 Overdue"), 1)])
        sheets = [about, flag_sheet, status, listing, units, officials, rates, overdue,
                  self.payments(f"{name}问题线索涉及的支付"),
                  self.chain(f"{name}问题支付的责任链（谁签字谁负责）")]
        return self.report("county", title, region, sheets)

    def rates(self, title: str) -> Sheet:
        columns = [Column("地区编码", TEXT, 14), Column("地区", TEXT, 14), Column("人口", INT, 10)]
        for f in gathered.FIGURES:
            columns += [Column(f"{FIGURE_ZH[f]}：分子", INT, 10),
                        Column(f"{FIGURE_ZH[f]}：分母", INT, 10),
                        Column(FIGURE_ZH[f], PERCENT, 10), Column(f"{FIGURE_ZH[f]}是否达标", TEXT, 8)]
        rows = []
        for r in _records(self.found, "三率一度 by township"):
            row = [r["region_code"], r["name"], r["population"]]
            for f in gathered.FIGURES:
                num, den, meets = (r[f"{f}_numerator"], r[f"{f}_denominator"], r[f"{f}_meets"])
                row += [num, den, ratio(num or 0, den or 0),
                        None if meets is None else ("是" if meets else "否")]
            rows.append(row)
        whole = rows.pop() if rows else None  # the county itself: the 合计
        if whole is not None:
            whole[0:2] = [TOTAL, f"全县（{whole[1]}）"]
        return Sheet("三率一度", title, columns, rows, whole,
                     notes=["比率为分子 ÷ 分母；分母为零或未知时不计算。达标标准见 docs/INSPECTION.md。"])
