"""Red-flag rules (问题线索): the catalogue, their thresholds, and the pure logic they share.

The catalogue (``RULES``) is the one of ``docs/INSPECTION.md``: each rule has a stable id, a
severity, the kind of subject it names and a one-line explanation in Chinese and English
(a template, filled with the flag's detail).  ``RuleSettings`` holds the thresholds, with
the documented defaults, read from ``ZHUISU_FLAG_*`` variables by ``from_env``; a change of
any threshold changes ``digest()`` and so makes the flags projection rebuild.

The functions below decide a rule from plain values (dates, amounts, lists), with no
database: ``projections.flags`` keeps the state they need, event by event, in log order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from domain.errors import InvalidInput
from domain.money import PURPOSES

HIGH, MEDIUM, LOW = "high", "medium", "low"
CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
"""Business dates are dates in China; a record time (UTC) is compared in this zone."""


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
       "duplicate_period": "ZHUISU_FLAG_DUPLICATE_PERIOD"}
_MINIMUM = {"idle_days": 0, "backdate_days": 0, "split_window_days": 0,
            "approval_threshold_fen": 1, "relapse_window_days": 0}


def _check(name: str, value: object, label: str) -> None:
    if name == "duplicate_period":
        if value not in PERIODS:
            raise InvalidInput(f"{label} must be one of {list(PERIODS)}, not {value!r}",
                               field=label)
        return
    low = _MINIMUM[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"{label} must be a whole number ≥ {low}, not {value!r}", field=label)


# pure rule logic -----------------------------------------------------------------------
REGISTERED, EXITED, REMOVED = "registered", "exited", "removed"
"""Register transitions of a household by business date (as ``Household.status_on``)."""


def status_on(transitions: Iterable[Sequence[Any]], day: dt.date) -> str | None:
    """The register status on ``day`` from ``[date ISO, status, log position]`` transitions:
    the last one dated on or before ``day`` (ties in log order); None: never on the register."""
    iso = day.isoformat()
    found = None
    for when, status, _ in sorted(transitions, key=lambda t: (t[0], t[2])):
        if when > iso:
            break
        found = status
    return found


def payment_rule(status: str | None, purpose: str) -> str | None:
    """The rule a household payment breaks, given the payee's status on its business date."""
    if status is None:
        return "PAY_UNREGISTERED"
    if status == REMOVED:
        return "PAY_REMOVED"
    if status == EXITED:
        p = PURPOSES.get(purpose)
        return None if p is not None and p.allowed_after_exit else "PAY_AFTER_EXIT"
    return None


def purpose_title(code: str) -> str:
    """The purpose's Chinese title ('产业扶持到户补助'), or its code when unknown."""
    p = PURPOSES.get(code)
    return p.title if p is not None else code


def period_key(day: dt.date, period: str) -> str:
    """The calendar period of a business date: '2025-03', '2025-Q1' or '2025'."""
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return str(day.year)
    raise ValueError(f"unknown period {period!r}")


def record_day(timestamp: dt.datetime) -> dt.date:
    """The date (China Standard Time) on which an event was recorded."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    return timestamp.astimezone(CHINA_STANDARD_TIME).date()


def backdated_by(timestamp: dt.datetime, effective_date: dt.date) -> int:
    """Days between the business date and the record date (negative: dated ahead)."""
    return (record_day(timestamp) - effective_date).days


def is_idle(idle_since: dt.date | None, clock: dt.date | None, idle_days: int) -> bool:
    """Money received on ``idle_since`` and still unspent is idle more than ``idle_days``."""
    return idle_since is not None and clock is not None and (clock - idle_since).days > idle_days


def relapsed_soon(exited_on: dt.date, relapsed_on: dt.date, window_days: int) -> bool:
    return (relapsed_on - exited_on).days <= window_days


def failing_review(reviews: Iterable[Sequence[Any]], exit_year: int, approved_on: dt.date,
                   line_fen: int) -> list | None:
    """The latest annual review before an exit approval, if it fails the exit year's line.

    ``reviews``: ``[year, date ISO, log position, income per capita fen]``, those recorded
    before the approval.  Reviews of the exit year or later, dated on or before the
    approval, count; the latest (by date, then log position) is the evidence.
    """
    iso = approved_on.isoformat()
    candidates = [r for r in reviews if r[0] >= exit_year and r[1] <= iso]
    if not candidates:
        return None
    latest = max(candidates, key=lambda r: (r[1], r[2]))
    return list(latest) if latest[3] <= line_fen else None


def completed_split(earlier: Iterable[Sequence[Any]], new: Sequence[Any], window_days: int,
                    threshold_fen: int) -> list[int] | None:
    """Does payment ``new`` complete a split (拆分支付)?  Returns the log positions of the
    split's payments (``new`` last), or None.

    ``earlier``: ``[date ISO, log position, amount]`` of the payments from the same account
    to the same payee for the same purpose seen before, each below the threshold, standing
    (not reversed) and not already part of a split.  ``new`` completes a split when some
    window of dates at most ``window_days`` apart holds it and earlier payments that
    together stay below the threshold and reach it with ``new``.  The earliest such window
    is chosen.
    """
    day = dt.date.fromisoformat(new[0])
    amount = new[2]
    if amount >= threshold_fen:
        return None
    near = sorted((dt.date.fromisoformat(d), pos, amt) for d, pos, amt in earlier
                  if abs((dt.date.fromisoformat(d) - day).days) <= window_days)
    starts = sorted({d for d, _, _ in near if d <= day} | {day})
    for start in starts:
        end = start + dt.timedelta(days=window_days)
        inside = [(d, pos, amt) for d, pos, amt in near if start <= d <= end]
        before = sum(amt for _, _, amt in inside)
        if inside and before < threshold_fen <= before + amount:
            return [pos for _, pos, _ in inside] + [new[1]]
    return None
