"""Red-flag rules (问题线索): the catalogue, their thresholds, and the rule families.

The catalogue (``RULES``) is the one of ``docs/INSPECTION.md``: each rule has a stable id, a
severity, the kind of subject it names and a one-line explanation in Chinese and English
(a template, filled with the flag's detail).  ``RuleSettings`` holds the thresholds, with
the documented defaults, read from ``ZHUISU_FLAG_*`` variables by ``from_env``; a change of
any threshold changes ``digest()`` and so makes the flags projection rebuild.

What counts as a flag, and why, is decided family by family from plain values (dates,
amounts, lists), with no database; each module names its rules:

- ``payments``: ``PAY_REMOVED``, ``PAY_AFTER_EXIT``, ``PAY_UNREGISTERED``,
  ``PAY_DUPLICATE``, ``SPLIT_PAYMENT``;
- ``relations`` (优亲厚友): ``PAYEE_RELATIVE_OF_SIGNER``, ``SIGNERS_RELATED``,
  ``APPROVER_RELATED_TO_HOUSEHOLD``, ``BANK_ACCOUNT_SHARED``;
- ``funds``: ``IDLE_FUNDS``;
- ``records``: ``BACKDATED`` (and ``CHINA_STANDARD_TIME``, the zone of record dates);
- ``exits``: ``EXIT_CHECKS_FAILED``, ``RELAPSE_SOON``;
- ``cases``: ``RECTIFICATION_OVERDUE``;
- ``batches`` (批量发放): ``PAY_CARD_NOT_BENEFICIARY``, ``PAY_REPEATED_FAILURE``,
  ``PAY_ACCOUNT_CHANGED``.

Their functions are importable from here too.  ``projections.flags`` keeps the state they
need, event by event, in log order (one module per family there as well).  The family
modules import only ``domain``; this module imports them, never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from domain.errors import InvalidInput
from inspection.rules.batches import (
    account_changed,
    account_reference,
    card_not_beneficiary,
    repeated_failures,
)
from inspection.rules.cases import completed_late, overdue_on, overdue_state
from inspection.rules.exits import exit_line, failing_review, relapsed_soon
from inspection.rules.funds import idle_fen, idle_limit, is_idle
from inspection.rules.payments import (
    EXITED,
    REGISTERED,
    REMOVED,
    completed_split,
    duplicates_withdrawn,
    payment_rule,
    period_key,
    purpose_title,
    repeats,
    split_joined,
    status_on,
    transition_on,
)
from inspection.rules.records import (
    CHINA_STANDARD_TIME,
    backdated_by,
    is_backdated,
    record_day,
)
from inspection.rules.relations import (
    declared_relation,
    identification_signers,
    preparer_and_approver,
    relative_among,
    signers_wording,
)

__all__ = [
    "CHINA_STANDARD_TIME", "ENV", "account_changed", "account_reference",
    "card_not_beneficiary", "repeated_failures", "EXITED", "HIGH", "LOW", "MEDIUM", "PERIODS", "REGISTERED",
    "REMOVED", "RULES", "RULE_IDS", "Rule", "RuleSettings", "backdated_by", "catalogue",
    "completed_late", "completed_split", "declared_relation", "duplicates_withdrawn",
    "exit_line", "failing_review", "identification_signers", "idle_fen", "idle_limit",
    "is_backdated", "is_idle", "overdue_on", "overdue_state", "payment_rule", "period_key",
    "preparer_and_approver", "purpose_title", "record_day", "relapsed_soon", "relative_among",
    "repeats", "signers_wording", "split_joined", "status_on", "transition_on",
]

HIGH, MEDIUM, LOW = "high", "medium", "low"


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: str
    subject_kind: str  # what ``subject_id`` names: payment, household, account, step, …
    zh: str  # one line, a template filled from the flag's values
    en: str

    def explain(self, **values: Any) -> tuple[str, str]:
        return self.zh.format(**values), self.en.format(**values)


_RULES = [
    Rule("PAY_REMOVED", HIGH, "payment",
         "向已清退户发放资金：{paid_on}支付，该户已于{removed_on}清退",
         "payment on {paid_on} to a household removed from the register (清退) on {removed_on}"),
    Rule("PAY_AFTER_EXIT", HIGH, "payment",
         "脱贫退出后发放不延续的政策资金：{exited_on}批准退出，{paid_on}支付{purpose_title}",
         "payment of {purpose} on {paid_on}, after the household's exit was approved on "
         "{exited_on}; that aid does not continue after exit"),
    Rule("PAY_UNREGISTERED", HIGH, "payment",
         "向未在册农户发放资金：{paid_on}支付时该户未经县级审批纳入建档立卡",
         "payment on {paid_on} to a household that was not on the register that day"),
    Rule("PAY_DUPLICATE", MEDIUM, "payment",
         "重复发放：同一户同一用途（{purpose_title}）在{period}已有支付",
         "duplicate payment: the household was already paid {purpose} in {period}"),
    Rule("BANK_ACCOUNT_SHARED", MEDIUM, "household",
         "多户共用同一银行账户：与{other_code}户申请时登记的账户相同",
         "bank account shared with household {other_code}"),
    Rule("PAYEE_RELATIVE_OF_SIGNER", HIGH, "payment",
         "优亲厚友：收款户成员{member}是签字干部{official}申报的亲属（{relation}）",
         "payee household member {member} is a declared relative ({relation}) of signer "
         "{official}"),
    Rule("SIGNERS_RELATED", HIGH, "payment",
         "经办人与审批人{how}：{preparer} / {approver}",
         "preparer and approver {how_en}: {preparer} / {approver}"),
    Rule("SPLIT_PAYMENT", MEDIUM, "payment",
         "拆分支付规避审批：{count}笔合计{total}元，单笔均低于审批限额{threshold}元",
         "split payment: {count} payments totalling {total} yuan, each below the approval "
         "threshold of {threshold} yuan"),
    Rule("IDLE_FUNDS", MEDIUM, "account",
         "资金滞留：{amount}元自{idle_since}起未支出，已{days}天",
         "idle funds: {amount} yuan unspent since {idle_since}, {days} days"),
    Rule("BACKDATED", LOW, "payment",
         "倒签：业务日期{effective_date}早于记录日期{recorded_on}共{days}天",
         "backdated: business date {effective_date} is {days} days before it was recorded "
         "on {recorded_on}"),
    Rule("EXIT_CHECKS_FAILED", HIGH, "household",
         "脱贫退出不达标：{year}年度年审人均纯收入{income}元不高于收入线{line}元",
         "exit approved although the {year} annual review found income per capita of "
         "{income} yuan, not above the line of {line} yuan"),
    Rule("RELAPSE_SOON", MEDIUM, "household",
         "脱贫后{days}天即返贫（疑似数字脱贫）",
         "relapsed {days} days after the exit was approved (possible paper exit, 数字脱贫)"),
    Rule("APPROVER_RELATED_TO_HOUSEHOLD", HIGH, "household",
         "优亲厚友：识别签字干部{official}申报该户成员{member}为亲属（{relation}）",
         "official {official}, who signed the household's identification, declared member "
         "{member} a relative ({relation})"),
    Rule("RECTIFICATION_OVERDUE", MEDIUM, "rectification",
         "整改逾期：{case_no}第{item_id}项期限{deadline}，{state}",
         "rectification item {item_id} of case {case_no} overdue: deadline {deadline}, "
         "{state_en}"),
    Rule("PAY_CARD_NOT_BENEFICIARY", HIGH, "payment",
         "持卡人非受益户成员：分户清单第{row}行收款卡持卡人身份证号不属于该户任何成员（疑似冒领、代领）",
         "row {row} of the payment list pays a card whose holder is not a member of the payee "
         "household (possible impersonation)"),
    Rule("PAY_REPEATED_FAILURE", MEDIUM, "household",
         "多次发放失败：{how}已被银行退回{count}次（最近一次：{reason}）",
         "repeated failure: {how_en} returned by the bank {count} times (latest: {reason})"),
    Rule("PAY_ACCOUNT_CHANGED", MEDIUM, "payment",
         "发放前变更收款账户：{paid_on}支付的收款账户与{basis}不同",
         "the account paid on {paid_on} differs from {basis_en}"),
]
RULES: dict[str, Rule] = {r.rule_id: r for r in _RULES}
RULE_IDS: tuple[str, ...] = tuple(RULES)


def catalogue() -> list[dict[str, str]]:
    """The rules as plain dicts (for the API): id, severity, subject kind, explanation."""
    return [asdict(r) for r in _RULES]


# settings ------------------------------------------------------------------------------
PERIODS = ("month", "quarter", "year")


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the rules (defaults as docs/INSPECTION.md)."""

    idle_days: int = 180
    backdate_days: int = 30
    split_window_days: int = 30
    approval_threshold_fen: int = 3_000_000
    relapse_window_days: int = 365
    duplicate_period: str = "month"
    account_change_days: int = 30  # PAY_ACCOUNT_CHANGED: how recent a previous payment counts

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name), f.name)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RuleSettings:
        """Read ``ZHUISU_FLAG_*`` (default: of the process; unset: the documented default);
        a bad value is refused naming its variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is None or not raw.strip():
                continue
            raw = raw.strip()
            if name == "duplicate_period":
                values[name] = raw
            else:
                try:
                    values[name] = int(raw.replace("_", ""))
                except ValueError:
                    raise InvalidInput(f"{var} must be a whole number, not {raw!r}",
                                       field=var) from None
            _check(name, values[name], var)
        return cls(**values)

    def digest(self) -> str:
        """A short digest of every threshold: equal digests, equal flags."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


ENV = {"idle_days": "ZHUISU_FLAG_IDLE_DAYS", "backdate_days": "ZHUISU_FLAG_BACKDATE_DAYS",
       "split_window_days": "ZHUISU_FLAG_SPLIT_WINDOW_DAYS",
       "approval_threshold_fen": "ZHUISU_FLAG_APPROVAL_THRESHOLD_FEN",
       "relapse_window_days": "ZHUISU_FLAG_RELAPSE_WINDOW_DAYS",
       "duplicate_period": "ZHUISU_FLAG_DUPLICATE_PERIOD",
       "account_change_days": "ZHUISU_FLAG_ACCOUNT_CHANGE_DAYS"}
_MINIMUM = {"idle_days": 0, "backdate_days": 0, "split_window_days": 0,
            "approval_threshold_fen": 1, "relapse_window_days": 0, "account_change_days": 0}


def _check(name: str, value: object, label: str) -> None:
    if name == "duplicate_period":
        if value not in PERIODS:
            raise InvalidInput(f"{label} must be one of {list(PERIODS)}, not {value!r}",
                               field=label)
        return
    low = _MINIMUM[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"{label} must be a whole number ≥ {low}, not {value!r}", field=label)
