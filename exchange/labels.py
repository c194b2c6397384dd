"""Chinese names for what the ledgers show: rules, severities, signing roles, fund sources,
purposes, positions, household steps and statuses, relations, causes of poverty.

The same words as the console's screens (``console.web``, ``console.screens.households``),
kept here so that a ledger, which leaves the system as a file, says what the screens say.
"""

from __future__ import annotations

from domain.money import PURPOSES
from domain.positions import POSITIONS
from inspection.rules import RULES

RULE_TITLE_ZH = {
    "PAY_REMOVED": "向已清退户发放", "PAY_AFTER_EXIT": "退出后发放不延续资金",
    "PAY_UNREGISTERED": "向未在册户发放", "PAY_DUPLICATE": "重复发放",
    "BANK_ACCOUNT_SHARED": "多户共用银行账户", "PAYEE_RELATIVE_OF_SIGNER": "优亲厚友（收款户）",
    "SIGNERS_RELATED": "经办人与审批人有亲属关系", "SPLIT_PAYMENT": "拆分支付规避审批",
    "IDLE_FUNDS": "资金滞留", "BACKDATED": "倒签补录", "EXIT_CHECKS_FAILED": "退出不达标",
    "RELAPSE_SOON": "退出后短期返贫（数字脱贫）",
    "APPROVER_RELATED_TO_HOUSEHOLD": "优亲厚友（识别签字）", "RECTIFICATION_OVERDUE": "整改逾期",
}
RULE_ZH = {rule_id: RULE_TITLE_ZH.get(rule_id, rule_id) for rule_id in RULES}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
SIGN_ROLE_ZH = {"preparer": "经办", "reviewer": "审核", "approver": "审批", "witness": "见证"}
FUND_ZH = {"central": "中央", "provincial": "省级", "city": "市级", "county": "县级",
           "departmental": "行业部门", "credit": "信贷"}
PURPOSE_ZH = {code: p.title for code, p in PURPOSES.items()}
POSITION_ZH = {kind: spec.title for kind, spec in POSITIONS.items()}

HOUSEHOLD_STATUS_ZH = {
    "applied": "已申请", "appraised": "已评议", "verified": "已核实", "first_notice": "第一次公示中",
    "township_reviewed": "乡镇已审核", "second_notice": "第二次公示中", "registered": "在册",
    "exit_proposed": "拟退出", "exit_appraised": "退出已评议", "exit_confirmed": "户主已确认退出",
    "exit_notice": "退出公示中", "exit_verified": "乡镇已核实退出", "exited": "已脱贫",
    "removed": "已清退", "rejected": "未纳入", "relapsed": "返贫",
}
STEP_ZH = {
    "Household.Applied": "申请", "Household.AppraisedByVillage": "民主评议",
    "Household.VerifiedByVillage": "入户核实", "Household.NoticePosted": "公示",
    "Household.ObjectionRaised": "公示异议", "Household.ObjectionResolved": "异议处理",
    "Household.ReviewedByTownship": "乡镇审核", "Household.ApprovedByCounty": "县级审批（纳入）",
    "Household.HelperAssigned": "帮扶（结对帮扶责任人）",
    "Household.AnnualReviewRecorded": "收入核查（年度）", "Household.ExitProposed": "提出退出",
    "Household.ExitAppraised": "退出评议", "Household.ExitConfirmedByHousehold": "户主确认退出",
    "Household.ExitVerifiedByTownship": "乡镇核实退出",
    "Household.ExitApprovedByCounty": "脱贫（县级批准退出）",
    "Household.RemovedFromRegister": "清退", "Household.Relapsed": "返贫",
    "FundAccount.Disbursed": "发放（到户）", "FundAccount.Recovered": "追回",
    "FundAccount.Reversed": "冲正",
}
RELATION_ZH = {"head": "户主", "spouse": "配偶", "child": "子女", "parent": "父母",
               "grandchild": "孙子女", "grandparent": "祖父母", "sibling": "兄弟姐妹",
               "child_in_law": "儿媳 / 女婿", "other": "其他"}
CAUSE_ZH = {"illness": "因病", "disability": "因残", "education": "因学", "disaster": "因灾",
            "lack_of_land": "缺土地", "lack_of_water": "缺水", "lack_of_skills": "缺技术",
            "lack_of_labour": "缺劳力", "lack_of_funds": "缺资金", "poor_transport": "交通条件落后",
            "lack_of_motivation": "自身发展动力不足", "other": "其他"}

# 整改台账: the offices' three words (挂号销号), from projections.case_queries.item_status
RECTIFIED, ONGOING, NOT_RECTIFIED = "已整改", "持续整改", "未整改"
