"""Planted misconduct (埋设的问题线索) for the demo county, and the ground truth to score
the red-flag rules (docs/INSPECTION.md) against.

``plant_misconduct(plan, n)`` adds to a demo plan (``demo.county``) ``n`` items of each kind of
wrong the rules look for.  Every item goes the real way: signed steps that
``Zhuisu.execute`` accepts, and the administrative calls (``declare_relative``,
``open_account``, ``open_case``, ``case_step``).  The domain refuses many wrongs at the
door, so what is planted is what gets through: a payment made before the payee's removal
is recorded with an earlier effective date; a payment made while the exit is verified,
the county's approval then recorded with a date before it; a relative declared by an
official who then signs; an amount paid in parts below the approval threshold; …
A payment to a household that was never registered cannot get through at all
(``HouseholdNotRegistered``): none is planted.

Planted households are new ones (codes ``H<village>9001``, ``…9002``, …) identified in their
village's round; the normal demo's households, officials and payments stay as they are.
A separate random stream (seeded from the demo's seed) draws every choice, so the same seed
plants the same items.

The truth (``truth["rules"][rule_id]``): ``planted`` — per item the exact ``subject_id`` the
rule reports and, for a human reader, what was done (household code, signers as official
codes and roles, amounts in fen, business dates, and ``recorded_on``: the record date,
before the record clock's 0–3 days); ``inherent`` — flags the normal demo raises by design
(its relapses within weeks of exit are ``RELAPSE_SOON``); ``how`` — how the kind is planted.

Why one file: one planter per red-flag rule, each a few lines, read as one list against
the catalogue of docs/INSPECTION.md and the ground truth it writes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.county import (
    COUNTY,
    IDENTIFIED_BY,
    REMOVAL_REASONS,
    SPAN_DAYS,
    YEAR,
    Admin,
    Step,
    _Household,
    _money_signers,
    _Planner,
    townships,
    villages,
)
from domain.household import INCOME_LINES_FEN
from domain.official import Official
from domain.project import Project

# The rules' default settings (docs/INSPECTION.md) that the planted items are sized by.
APPROVAL_THRESHOLD_FEN = 3_000_000
SPLIT_WINDOW_DAYS = 30
IDLE_DAYS = 180
BACKDATE_DAYS = 30
RELAPSE_WINDOW_DAYS = 365

RULES = ("PAY_REMOVED", "PAY_AFTER_EXIT", "PAY_UNREGISTERED", "PAY_DUPLICATE",
         "BANK_ACCOUNT_SHARED", "PAYEE_RELATIVE_OF_SIGNER", "SIGNERS_RELATED", "SPLIT_PAYMENT",
         "IDLE_FUNDS", "BACKDATED", "EXIT_CHECKS_FAILED", "RELAPSE_SOON",
         "APPROVER_RELATED_TO_HOUSEHOLD", "RECTIFICATION_OVERDUE")
UNPLANTABLE = frozenset({"PAY_UNREGISTERED"})  # the domain refuses it at the door
FORMAT = "zhuisu-demo-truth/1"

SOURCE_OF = {"hh_industry": "central", "hh_medical": "central", "hh_employment": "central",
             "hh_housing": "provincial", "prj_industry": "central"}
SPARE_SOURCES = {"county": "县级财政衔接资金", "departmental": "行业部门统筹整合资金",
                 "city": "市级财政专项扶贫资金", "credit": "扶贫小额信贷风险补偿金"}
RELATIONS = ("配偶之兄弟", "表兄弟", "堂兄弟", "侄子", "外甥", "儿媳之父")
INSPECTOR = "追溯县纪委监委"

HOW = {
    "PAY_REMOVED": "a new household is registered and paid (产业到户); its removal (清退) is "
                   "recorded 2–10 days after the payment with an effective date 0–7 days "
                   "before it (well within the backdating threshold)",
    "PAY_AFTER_EXIT": "a new household goes through exit up to township verification; it is "
                      "paid industry aid (which stops at exit) 2–8 days later; then the "
                      "county's exit approval is recorded with a date on or before the payment",
    "PAY_UNREGISTERED": "not plantable: the domain refuses a payment to a household that is not "
                        "on the register on the payment's date (HouseholdNotRegistered), and a "
                        "registration cannot be recorded with a later date once paid (the "
                        "procedure never goes back in time)",
    "PAY_DUPLICATE": "a new household is paid medical aid twice in one calendar month (two "
                     "amounts, different days, neither reversed; together below the approval "
                     "threshold)",
    "BANK_ACCOUNT_SHARED": "a new household applies with the bank account hash of a household "
                           "of its village that applied earlier; it is registered",
    "PAYEE_RELATIVE_OF_SIGNER": "the township's finance accountant (who reviews its payments "
                                "and signs no household step) declares a member of a new "
                                "household a relative and reviews a payment to it (every "
                                "other item declares after the payment)",
    "SIGNERS_RELATED": "the township's poverty officer and party secretary (who never prepare "
                       "and approve one step together otherwise) are declared relatives by "
                       "one of them (each in turn); the officer prepares and the secretary "
                       "approves a payment (half the items declare after the payment)",
    "SPLIT_PAYMENT": "an amount of 30,000–44,000 yuan is paid below the 30,000-yuan approval "
                     "threshold: to a new household as two housing payments a few days "
                     "apart across a month's end (so not a same-month duplicate), or to a new "
                     "project as three payments within days; only the last part reaches it",
    "IDLE_FUNDS": "an unused account (county, departmental, city or credit funds of a "
                  "township or of the county) is opened and receives money in February–May; "
                  "nothing is ever paid from it",
    "BACKDATED": "a step recorded 45–150 days after its business date: a payment to a new "
                 "household, or the assignment of its helper (帮扶责任人)",
    "EXIT_CHECKS_FAILED": "a new household's annual review of the year records income at or "
                          "below the year's line; weeks later its exit is proposed claiming "
                          "income above the line and approved by the county",
    "RELAPSE_SOON": "a new household exits in the summer and relapses (返贫) 20–120 days after "
                    "the county approved the exit",
    "APPROVER_RELATED_TO_HOUSEHOLD": "the village director, who approves the household's "
                                     "verification (入户核实), declares a member of a new "
                                     "household a relative: before the verification, or (every "
                                     "other item) after the household is registered",
    "RECTIFICATION_OVERDUE": "a case is opened in a village with two rectification items: one "
                             "completed before its deadline, one never completed, its deadline "
                             "passed by later business dates in the log",
}


def plant_misconduct(plan: _Planner, per_kind: int) -> dict[str, Any]:
    """Add ``per_kind`` items of each plantable kind to ``plan``; return the truth."""
    planter = _Planter(plan, per_kind)
    rules: dict[str, Any] = {}
    for rule in RULES:
        planted = [item for i in range(per_kind)
                   if (item := getattr(planter, rule.lower())(i)) is not None]
        rules[rule] = {"planted": planted, "inherent": [], "how": HOW[rule],
                       "plantable": rule not in UNPLANTABLE}
        if len(planted) < per_kind and rule not in UNPLANTABLE:
            rules[rule]["short"] = (f"{per_kind - len(planted)} of {per_kind} could not be "
                                    f"planted at size {plan.size}")
    rules["RELAPSE_SOON"]["inherent"] = [
        {"subject_kind": "household", "subject_id": h.id, "household_code": h.code,
         "exit_approved": h.exit_approved.isoformat(), "relapsed": h.relapsed_on.isoformat(),
         "what": "the normal demo's relapse (返贫) weeks after exit: a true RELAPSE_SOON"}
        for h in plan.households
        if h.relapsed_on and h.exit_approved and not planter.is_planted(h)]
    return {"format": FORMAT, "size": plan.size, "seed": plan.seed, "plant_per_kind": per_kind,
            "settings": {"approval_threshold_fen": APPROVAL_THRESHOLD_FEN,
                         "split_window_days": SPLIT_WINDOW_DAYS, "idle_days": IDLE_DAYS,
                         "backdate_days": BACKDATE_DAYS,
                         "relapse_window_days": RELAPSE_WINDOW_DAYS,
                         "duplicate_period": "month"},
            "rules": rules}


def write_truth(truth: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(truth, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                          encoding="utf-8")


@dataclass
class Score:
    """One rule's flags against the truth."""

    rule_id: str
    planted: int
    found: int
    missed: list[str]  # planted subject ids without a flag
    inherent: int  # flags the normal demo raises by design, found
    false_alarms: list[str]  # flagged subject ids neither planted nor inherent

    @property
    def flags(self) -> int:
        return self.found + self.inherent + len(self.false_alarms)

    @property
    def recall(self) -> float | None:
        return self.found / self.planted if self.planted else None

    @property
    def precision(self) -> float | None:
        return (self.found + self.inherent) / self.flags if self.flags else None


def score(truth: dict[str, Any], flags: list[dict[str, Any]]) -> dict[str, Score]:
    """Per rule of the truth: a *found* is a flag with a planted (rule_id, subject_id); a
    *false alarm* is a flag of that rule whose subject was neither planted nor inherent."""
    flagged: dict[str, set[str]] = {}
    for f in flags:
        flagged.setdefault(f["rule_id"], set()).add(str(f["subject_id"]))
    out = {}
    for rule, t in truth["rules"].items():
        planted = {i["subject_id"] for i in t["planted"]}
        inherent = {i["subject_id"] for i in t["inherent"]}
        got = flagged.get(rule, set())
        out[rule] = Score(rule, len(planted), len(planted & got), sorted(planted - got),
                          len(inherent & got), sorted(got - planted - inherent))
    for rule in sorted(set(flagged) - set(out)):
        out[rule] = Score(rule, 0, 0, [], 0, sorted(flagged[rule]))
    return out


class _Planter:
    """Draws and adds the planted items, one kind after the other."""

    def __init__(self, plan: _Planner, per_kind: int):
        self.plan = plan
        self.rng = random.Random(f"zhuisu-demo/{plan.seed}/misconduct")
        self.villages = [(t, v) for t, vs in villages(plan.size).items() for v in vs]
        self.planted: set[str] = set()  # household codes
        self.shared: set[str] = set()  # household codes whose bank account was reused
        spare = [(r, s) for r in [*townships(plan.size), COUNTY] for s in SPARE_SOURCES]
        self.idle_accounts = self.rng.sample(spare, len(spare))

    # -- building blocks ------------------------------------------------------------
    def is_planted(self, h: _Household) -> bool:
        return h.code in self.planted

    def day(self, first: dt.date, last: dt.date) -> dt.date:
        return first + dt.timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    def household(self, village: tuple[str, str] | None = None, *,
                  bank_account_hash: str | None = None,
                  helper_late_days: int = 0) -> tuple[_Household, list[Step]]:
        """A new household through its village's identification round: registered."""
        township, v = village or self.rng.choice(self.villages)
        number = 9000 + self.plan.next(f"planted-household:{v}")
        h = self.plan.new_household(v, township, number, self.rng)
        dates = self.plan.village_dates[v]
        steps = self.plan.identify(h, dates, rng=self.rng, bank_account_hash=bank_account_hash,
                                   applied=dates.base + dt.timedelta(days=10))
        for s in steps[:-1]:
            self.plan.add(s, village=v)
        helper = steps[-1]
        assert helper.step == "Household.HelperAssigned"
        self.plan.add(helper, at=helper.day + dt.timedelta(days=helper_late_days), village=v)
        self.plan.households.append(h)
        self.planted.add(h.code)
        return h, steps

    def pay(self, region: str, payee_kind: str, payee_id: str, day: dt.date, purpose: str,
            amount: int, *, at: dt.date | None = None,
            signers: tuple[tuple[str, str], ...] | None = None) -> dict[str, Any]:
        """拨付 from ``region``'s account of the purpose's fund source."""
        account = self.plan.account(region, SOURCE_OF[purpose])
        mid = self.plan.movement_id("planted-movement")
        document_no = f"{region}-付{YEAR}-P{self.plan.next('planted-document'):04d}"
        signers = signers or _money_signers(region, large=amount >= 5_000_000)
        self.plan.add(Step(day, "FundAccount.Disbursed", account, {
            "movement_id": mid, "payee_kind": payee_kind, "payee_id": payee_id,
            "amount_fen": amount, "effective_date": day.isoformat(), "purpose": purpose,
            "project_id": None, "document_no": document_no}, signers), at=at)
        return {"movement_id": mid, "account_id": account, "payee_kind": payee_kind,
                "payee_id": payee_id, "purpose": purpose, "amount_fen": amount,
                "effective_date": day.isoformat(), "recorded_on": (at or day).isoformat(),
                "document_no": document_no, "signers": _signers(signers)}

    def pay_household(self, h: _Household, day: dt.date, purpose: str, amount: int,
                      **kw: Any) -> dict[str, Any]:
        return self.pay(h.township, "household", h.id, day, purpose, amount, **kw)

    def small_amount(self) -> int:
        return self.plan.amount(800, 3000, 100, self.rng)

    def paid_after_registration(self, h: _Household, last: dt.date) -> dt.date:
        assert h.registered_on is not None
        return self.day(max(h.registered_on + dt.timedelta(days=10), IDENTIFIED_BY), last)

    def around(self, day: dt.date, *, before: bool, earliest: dt.date) -> dt.date:
        """A date 3–40 days before ``day`` (not before ``earliest``) or after it (in the year)."""
        if before:
            return max(earliest, day - dt.timedelta(days=self.rng.randint(3, 40)))
        return min(dt.date(YEAR, 12, 31), day + dt.timedelta(days=self.rng.randint(3, 40)))

    def declare(self, official: str, id_number: str, relation: str, on: dt.date) -> None:
        self.plan.add(Admin("declare_relative", (official, id_number, relation)), at=on)

    def add_all(self, steps: list[Step]) -> None:
        for s in steps:
            self.plan.add(s)

    # -- the kinds, one item each ------------------------------------------------------
    def pay_removed(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        paid = self.paid_after_registration(h, dt.date(YEAR, 10, 31))
        payment = self.pay_household(h, paid, "hh_industry", self.small_amount())
        removed = max(h.registered_on, paid - dt.timedelta(days=self.rng.randint(0, 7)))
        recorded = paid + dt.timedelta(days=self.rng.randint(2, 10))
        removal = self.plan.removal(h, removed, self.rng.choice(REMOVAL_REASONS))
        self.plan.add(removal, at=recorded)
        h.status = "removed"
        return _item("payment", payment["movement_id"], h, payment=payment, removal={
            "effective_date": removed.isoformat(), "recorded_on": recorded.isoformat(),
            "reason": removal.content["reason"], "signers": _signers(removal.signers)},
            what=f"paid {payment['amount_fen']} fen on {paid}; removal effective {removed} "
                 f"recorded on {recorded}")

    def pay_after_exit(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        steps = self.plan.exit_steps(h, self.day(dt.date(YEAR, 7, 1), dt.date(YEAR, 9, 30)),
                                     rng=self.rng)
        *before, approval = steps
        self.add_all(before)
        verified = before[-1].day
        paid = verified + dt.timedelta(days=self.rng.randint(2, 8))
        payment = self.pay_household(h, paid, "hh_industry", self.small_amount())
        approved = verified + dt.timedelta(days=self.rng.randint(1, (paid - verified).days))
        recorded = paid + dt.timedelta(days=self.rng.randint(1, 5))
        self.plan.add(_on(approval, approved), at=recorded)
        h.exit_approved = approved
        return _item("payment", payment["movement_id"], h, payment=payment, exit={
            "verified_by_township": verified.isoformat(), "approved": approved.isoformat(),
            "approval_recorded_on": recorded.isoformat(),
            "approval_signers": _signers(approval.signers)},
            what=f"paid hh_industry on {paid} while exit-verified; exit approval dated "
                 f"{approved} recorded on {recorded}")

    def pay_unregistered(self, i: int) -> None:
        return None

    def pay_duplicate(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        month = self.rng.randint(5, 11)
        first = dt.date(YEAR, month, self.rng.randint(1, 12))
        second = dt.date(YEAR, month, self.rng.randint(16, 28))
        one = self.pay_household(h, first, "hh_medical", self.plan.amount(500, 8000, 100, self.rng))
        two = self.pay_household(h, second, "hh_medical",
                                 self.plan.amount(500, 8000, 100, self.rng))
        return _item("payment", two["movement_id"], h, payments=[one, two],
                     what=f"hh_medical paid on {first} and again on {second}")

    def bank_account_shared(self, i: int) -> dict[str, Any]:
        township, v = self.rng.choice(self.villages)
        earlier = [o for o in self.plan.households
                   if o.village == v and o.registered_on and o.code not in self.planted
                   and o.code not in self.shared]
        other = self.rng.choice(earlier)
        self.shared.add(other.code)
        h, steps = self.household((township, v),
                                  bank_account_hash=self.plan.bank_account_hash(other))
        return _item("household", h.id, h, shares_with={
            "household_code": other.code, "household_id": other.id},
            bank_account_hash=steps[0].content["bank_account_hash"],
            what=f"applied on {steps[0].day} with the bank account of {other.code}")

    def payee_relative_of_signer(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        official = f"{h.township}-finance-accountant"
        member = self.rng.randrange(len(h.members))
        paid = self.paid_after_registration(h, dt.date(YEAR, 11, 30))
        declared = self.around(paid, before=i % 2 == 0, earliest=h.registered_on)
        relation = self.rng.choice(RELATIONS)
        self.declare(official, h.id_numbers[member], relation, declared)
        payment = self.pay_household(h, paid, self.rng.choice(("hh_industry", "hh_employment")),
                                     self.small_amount())
        return _item("payment", payment["movement_id"], h, payment=payment, relative={
            "official": official, "member": h.members[member]["name"],
            "member_relation": h.members[member]["relation"], "relation": relation,
            "declared_on": declared.isoformat()},
            what=f"{official} declared {h.members[member]['name']} a relative on {declared}; "
                 f"reviewed the payment of {paid}")

    def signers_related(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        t = h.township
        preparer, approver = f"{t}-poverty-officer", f"{t}-party-secretary"
        declarer, relative = (approver, preparer) if i % 2 == 0 else (preparer, approver)
        paid = self.paid_after_registration(h, dt.date(YEAR, 11, 30))
        declared = self.around(paid, before=i % 4 < 2, earliest=h.registered_on)
        self.declare(declarer, self.plan.official_id_numbers[relative], "表兄弟", declared)
        signers = ((preparer, "preparer"), (f"{t}-finance-accountant", "reviewer"),
                   (approver, "approver"))
        payment = self.pay_household(h, paid, "hh_industry", self.small_amount(),
                                     signers=signers)
        return _item("payment", payment["movement_id"], h, payment=payment, relative={
            "declared_by": declarer, "relative": relative, "relation": "表兄弟",
            "declared_on": declared.isoformat()},
            what=f"{declarer} declared {relative} a relative on {declared}; they prepared "
                 f"and approved the payment of {paid}")

    def split_payment(self, i: int) -> dict[str, Any]:
        return self.split_to_household() if i % 2 == 0 else self.split_to_project()

    def split_to_household(self) -> dict[str, Any]:
        h, _ = self.household()
        total = self.plan.amount(30_000, 44_000, 100, self.rng)
        first_part = round(total * self.rng.uniform(0.4, 0.6) / 10_000) * 10_000
        month = self.rng.randint(6, 10)
        first = dt.date(YEAR, month, calendar.monthrange(YEAR, month)[1]) - dt.timedelta(
            days=self.rng.randint(0, 4))
        second = dt.date(YEAR, month + 1, 1) + dt.timedelta(days=self.rng.randint(0, 4))
        parts = [self.pay_household(h, first, "hh_housing", first_part),
                 self.pay_household(h, second, "hh_housing", total - first_part)]
        return _item("payment", parts[-1]["movement_id"], h, total_fen=total, payments=parts,
                     what=f"{total} fen of housing aid paid as {first_part} on {first} and "
                          f"{total - first_part} on {second}")

    def split_to_project(self) -> dict[str, Any]:
        township, v = self.rng.choice(self.villages)
        code = f"P{v}-{YEAR}-S{self.plan.next('planted-project'):02d}"
        pid = str(Project.create_id(code))
        total = self.plan.amount(30_000, 42_000, 100, self.rng)
        approved = self.day(dt.date(YEAR, 4, 20), dt.date(YEAR, 9, 30))
        signers = ((f"{COUNTY}-poverty-staff-{self.rng.randint(1, 3)}", "preparer"),
                   (f"{COUNTY}-poverty-director", "reviewer"),
                   (f"{COUNTY}-deputy-magistrate", "approver"))
        self.plan.add(Step(approved, "Project.Approved", pid, {
            "project_code": code, "name": f"{self.plan.names[v]}特色种养到户扶持项目",
            "region_code": v, "purpose_code": "prj_industry", "budget_fen": total,
            "effective_date": approved.isoformat(), "beneficiary_household_ids": []}, signers))
        self.plan.projects += 1
        part = total // 3 // 10_000 * 10_000
        day = approved + dt.timedelta(days=self.rng.randint(5, 15))
        parts = []
        for amount in (part, part, total - 2 * part):
            parts.append(self.pay(township, "project", pid, day, "prj_industry", amount))
            day += dt.timedelta(days=self.rng.randint(2, 6))
        return {"subject_kind": "payment", "subject_id": parts[-1]["movement_id"],
                "project_code": code, "project_id": pid, "village": v, "total_fen": total,
                "project_approved": approved.isoformat(), "project_signers": _signers(signers),
                "payments": parts,
                "what": f"project {code} ({total} fen) paid in three parts of "
                        f"{', '.join(str(p['amount_fen']) for p in parts)} fen"}

    def idle_funds(self, i: int) -> dict[str, Any] | None:
        if i >= len(self.idle_accounts):
            return None
        region, source = self.idle_accounts[i]
        received = self.day(dt.date(YEAR, 2, 1), dt.date(YEAR, 5, 31))
        amount = self.plan.amount(50_000, 800_000, 1000, self.rng)
        account = self.plan.account(region, source)
        self.plan.add(Admin("open_account", (region, source, "")), at=received, first=True)
        mid = self.plan.movement_id("planted-movement")
        signers = _money_signers(region, large=amount >= 5_000_000)
        self.plan.add(Step(received, "FundAccount.Received", account, {
            "movement_id": mid, "amount_fen": amount, "effective_date": received.isoformat(),
            "purpose": "special_fund",
            "document_no": f"{region}-收{YEAR}-P{self.plan.next('planted-document'):04d}",
            "source": SPARE_SOURCES[source]}, signers), first=True)
        return {"subject_kind": "account", "subject_id": account, "region_code": region,
                "fund_source": source, "received": {
                    "movement_id": mid, "amount_fen": amount, "effective_date": received.isoformat(),
                    "signers": _signers(signers)},
                "what": f"{amount} fen received by {region}/{source} on {received}, never spent"}

    def backdated(self, i: int) -> dict[str, Any]:
        if i % 2 == 0:
            h, _ = self.household()
            paid = self.paid_after_registration(h, dt.date(YEAR, 7, 31))
            recorded = paid + dt.timedelta(days=self.rng.randint(45, 150))
            payment = self.pay_household(h, paid, "hh_industry", self.small_amount(),
                                         at=recorded)
            return _item("payment", payment["movement_id"], h, payment=payment,
                         what=f"payment dated {paid} recorded on {recorded}")
        late = self.rng.randint(45, 120)
        h, steps = self.household(helper_late_days=late)
        helper = steps[-1]
        return _item("step", f"{h.id}@{len(steps)}", h, step={
            "step": helper.step, "version": len(steps), "effective_date": helper.day.isoformat(),
            "recorded_on": (helper.day + dt.timedelta(days=late)).isoformat(),
            "signers": _signers(helper.signers)},
            what=f"helper assignment dated {helper.day} recorded {late} days later")

    def exit_checks_failed(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        reviewed = self.day(dt.date(YEAR, 6, 1), dt.date(YEAR, 9, 10))
        line = INCOME_LINES_FEN[YEAR]
        low = self.plan.amount(4000, line // 100 - 100, 10, self.rng)
        review = Step(reviewed, "Household.AnnualReviewRecorded", h.id, {
            "year": YEAR, "effective_date": reviewed.isoformat(), "income_per_capita_fen": low,
            "members_count": len(h.members), "notes": "年度收入核查"},
            ((f"{h.village}-accountant", "preparer"), (f"{h.township}-poverty-officer", "reviewer")))
        self.plan.add(review)
        claimed = line + self.plan.amount(300, 3000, 10, self.rng)
        proposed = reviewed + dt.timedelta(days=self.rng.randint(10, 40))
        steps = self.plan.exit_steps(h, proposed, rng=self.rng, income=claimed)
        self.add_all(steps)
        return _item("household", h.id, h, review={
            "effective_date": reviewed.isoformat(), "income_per_capita_fen": low,
            "income_line_fen": line, "signers": _signers(review.signers)}, exit={
            "proposed": proposed.isoformat(), "claimed_income_per_capita_fen": claimed,
            "approved": h.exit_approved.isoformat(), "approval_signers": _signers(steps[-1].signers)},
            what=f"review of {reviewed}: {low} fen ≤ line {line}; exit approved on "
                 f"{h.exit_approved} claiming {claimed} fen")

    def relapse_soon(self, i: int) -> dict[str, Any]:
        h, _ = self.household()
        self.add_all(self.plan.exit_steps(h, self.day(dt.date(YEAR, 5, 1), dt.date(YEAR, 8, 31)),
                                          rng=self.rng))
        approved = h.exit_approved
        relapsed = min(approved + dt.timedelta(days=self.rng.randint(20, 120)),
                       dt.date(YEAR, 12, 20))
        relapse = self.plan.relapse(h, relapsed, self.rng)
        self.plan.add(relapse)
        return _item("household", h.id, h, exit_approved=approved.isoformat(),
                     relapsed=relapsed.isoformat(), relapse_signers=_signers(relapse.signers),
                     what=f"exit approved on {approved}, relapsed on {relapsed} "
                          f"({(relapsed - approved).days} days)")

    def approver_related_to_household(self, i: int) -> dict[str, Any]:
        h, steps = self.household()
        official = f"{h.village}-director"
        member = self.rng.randrange(len(h.members))
        verification = next(s for s in steps if s.step == "Household.VerifiedByVillage")
        if i % 2 == 0:
            declared = steps[0].day + dt.timedelta(days=1)
        else:
            assert h.registered_on is not None
            declared = h.registered_on + dt.timedelta(days=self.rng.randint(5, 60))
        self.declare(official, h.id_numbers[member], self.rng.choice(RELATIONS), declared)
        return _item("household", h.id, h, relative={
            "official": official, "member": h.members[member]["name"],
            "member_relation": h.members[member]["relation"],
            "declared_on": declared.isoformat()}, signed={
            "step": verification.step, "effective_date": verification.day.isoformat(),
            "signers": _signers(verification.signers)},
            what=f"{official} declared {h.members[member]['name']} a relative on {declared}; "
                 f"approved the household's verification on {verification.day}")

    def rectification_overdue(self, i: int) -> dict[str, Any]:
        township, v = self.rng.choice(self.villages)
        case_no = f"追纪〔{YEAR}〕P{i + 1:03d}号"
        opened = self.day(dt.date(YEAR, 5, 1), dt.date(YEAR, 7, 31))
        director = str(Official.create_id(f"{v}-director"))
        case_type = self.rng.choice(("duty_neglect", "false_claim", "idle_funds"))
        self.plan.add(Admin("open_case", (), {
            "case_no": case_no, "case_type": case_type,
            "title": f"{self.plan.names[v]}扶贫资金使用问题", "region_code": v,
            "effective_date": opened.isoformat(),
            "subjects": [{"official_id": director, "reason": "村级扶贫资金报账不规范"}],
            "recorded_by": INSPECTOR}), at=opened)
        # completed well before its deadline: the log clock may run up to a transaction's
        # span (demo.county.SPAN_DAYS) ahead of the completion
        done = opened + dt.timedelta(days=self.rng.randint(5, 20))
        done_by = done + dt.timedelta(days=self.rng.randint(SPAN_DAYS + 5, SPAN_DAYS + 30))
        due = opened + dt.timedelta(days=self.rng.randint(60, 120))
        items = (("R1", "补齐资金拨付公示材料", done_by), ("R2", "建立村级报账台账并逐笔核对", due))
        for item_id, problem, deadline in items:
            self.plan.add(Admin("case_step", (case_no, "add_rectification_item"), {
                "item_id": item_id, "problem": problem, "deadline": deadline.isoformat(),
                "unit_code": f"{v}-VC", "official_id": director,
                "effective_date": opened.isoformat(), "recorded_by": INSPECTOR}), at=opened)
        self.plan.add(Admin("case_step", (case_no, "complete_rectification_item"), {
            "item_id": "R1", "evidence": "公示照片及台账已归档",
            "effective_date": done.isoformat(), "recorded_by": INSPECTOR}), at=done)
        return {"subject_kind": "rectification", "subject_id": f"{case_no}/R2",
                "case_no": case_no, "case_type": case_type, "village": v,
                "opened": opened.isoformat(), "deadline": due.isoformat(),
                "control": {"item_id": "R1", "deadline": done_by.isoformat(),
                            "completed": done.isoformat()},
                "what": f"item R2 due {due} never completed; R1 due {done_by} completed {done}"}


def _on(step: Step, day: dt.date) -> Step:
    """The same step with another business date."""
    return step._replace(day=day, content={**step.content, "effective_date": day.isoformat()})


def _signers(signers: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"official": code, "official_id": str(Official.create_id(code)), "role": role}
            for code, role in signers]


def _item(kind: str, subject_id: str, h: _Household, **what: Any) -> dict[str, Any]:
    return {"subject_kind": kind, "subject_id": subject_id, "household_code": h.code,
            "household_id": h.id, "village": h.village,
            "registered_on": h.registered_on.isoformat() if h.registered_on else None, **what}
