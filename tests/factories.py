"""Small given-builders for the domain tests (STYLE.md §5).

``a_county_world(app)`` makes one province → city → county → township → two villages, a
unit at each region, an official in every position the procedures need (each with a key
derived from its code, valid from 2020-01-01) and a central-funds account from township
level up — all in one transaction.  ``sign``/``run`` build a signed command for any step,
choosing the default signer for each role the step's rule names; ``by=`` swaps signers.
The remaining builders are the givens of the tests: households part-way or all the way
through a procedure, funded accounts, approved projects, and the content of each step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from store.settings import Settings, build_app
from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.household import EXIT_CHECKS, Household
from domain.identity import check_digit
from domain.official import Official
from domain.positions import STEP_RULES, Area, StepRule, money_rule
from domain.project import Project
from domain.region import RegionLevel, RegionPath
from domain.signing import Role, SigningKey, b64, sign_command

D = dt.date
# whole applications on a SQLite file (demo and planted-misconduct tests) ------------------
PEPPER = "5a" * 32  # one ID pepper for every store made here, so ID hashes compare equal


def sqlite_app(directory: Path) -> Zhuisu:
    """The application on a new SQLite file in ``directory``, with the shared pepper."""
    directory.mkdir(parents=True, exist_ok=True)
    pepper = directory / "id-pepper"
    pepper.write_text(PEPPER)
    return build_app(Settings(database_url=f"sqlite:///{directory / 'zhuisu.db'}",
                              id_pepper_file=pepper))


START = D(2020, 1, 1)  # every position and key in the world is held from this date

PROVINCE, CITY, COUNTY, TOWNSHIP = "52", "5226", "522625", "522625100"
VILLAGE, OTHER_VILLAGE = "522625100001", "522625100002"
REGIONS = [
    (PROVINCE, "贵州省", "province", None),
    (CITY, "黔东南州", "city", PROVINCE),
    (COUNTY, "镇远县", "county", CITY),
    (TOWNSHIP, "羊场镇", "township", COUNTY),
    (VILLAGE, "坪地村", "village", TOWNSHIP),
    (OTHER_VILLAGE, "高坡村", "village", TOWNSHIP),
]
COUNTY_B = "522626"  # a neighbouring county with nothing in it: for jurisdiction denials


def another_county(world: World) -> str:
    """施秉县 beside the world's county (same city): callers bound to it see none of the world."""
    world.app.create_region(COUNTY_B, "施秉县", "county", CITY)
    return COUNTY_B


UNIT_KIND = {"province": "government", "city": "government", "county": "government",
             "township": "government", "village": "village_committee"}

# level → short name → position kind (domain.positions.POSITIONS)
STAFF: dict[str, dict[str, str]] = {
    "province": {"finance_officer": "province_finance_officer",
                 "poverty_director": "province_poverty_office_director",
                 "finance_director": "province_finance_director"},
    "city": {"finance_officer": "city_finance_officer",
             "poverty_director": "city_poverty_office_director",
             "finance_director": "city_finance_director"},
    "county": {"poverty_staff": "county_poverty_office_staff",
               "poverty_director": "county_poverty_office_director",
               "deputy_magistrate": "deputy_county_magistrate",
               "finance_officer": "county_finance_officer",
               "finance_director": "county_finance_director"},
    "township": {"poverty_officer": "township_poverty_officer", "head": "township_head",
                 "party_secretary": "township_party_secretary",
                 "finance_accountant": "township_finance_accountant"},
    "village": {"accountant": "village_accountant", "party_secretary": "village_party_secretary",
                "director": "village_director", "first_secretary": "village_first_secretary"},
}

P, R, A, W = Role.PREPARER, Role.REVIEWER, Role.APPROVER, Role.WITNESS
ID, FU = Area.IDENTIFICATION, Area.FUNDS
# (area, level) → role → short name of the official who signs by default
DEFAULT_SIGNERS: dict[tuple[Area, str], dict[Role, str]] = {
    (ID, "village"): {P: "accountant", R: "director", A: "party_secretary", W: "first_secretary"},
    (ID, "township"): {P: "poverty_officer", R: "head", A: "party_secretary"},
    (ID, "county"): {P: "poverty_staff", R: "poverty_director", A: "deputy_magistrate"},
    (FU, "province"): {P: "finance_officer", R: "poverty_director", A: "finance_director"},
    (FU, "city"): {P: "finance_officer", R: "poverty_director", A: "finance_director"},
    (FU, "county"): {P: "finance_officer", R: "poverty_director", A: "finance_director"},
    (FU, "township"): {P: "finance_accountant", R: "head", A: "party_secretary"},
}


def official(short: str, region: str) -> str:
    """The code of the world's official ``short`` at ``region``: 'accountant@522625100001'."""
    return f"{short}@{region}"


def key_for(code: str, generation: int = 0) -> SigningKey:
    """The deterministic key of an official (generation 1, 2 … for rotated keys)."""
    return SigningKey.from_seed(f"{code}#{generation}".encode())


def official_id(code: str) -> str:
    return str(Official.create_id(code))


def id_number(n: int) -> str:
    """A valid 18-character resident ID number (GB 11643 check digit) for person ``n``."""
    first17 = f"52262519{n % 10**9:09d}"
    return first17 + check_digit(first17)


def person_number(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big")


@dataclass
class World:
    app: Zhuisu

    def account(self, region: str, fund_source: str = "central") -> UUID:
        return FundAccount.create_id(region, fund_source)

    def balance(self, account_id: UUID) -> int:
        return self.app.load(FundAccount, account_id).balance


def a_county_world(app: Zhuisu) -> World:
    """Regions, units, officials with positions and keys, and central-funds accounts."""
    with app.batch():
        n = 0
        for code, name, level, parent in REGIONS:
            app.create_region(code, name, level, parent)
            unit = f"U{code}"
            app.establish_unit(unit, f"{name}{UNIT_KIND[level]}", UNIT_KIND[level], code)
            for short, kind in STAFF[level].items():
                n += 1
                who = official(short, code)
                app.register_official(who, who, unit, id_number(n))
                app.take_position(who, kind, code, START)
                app.register_key(who, b64(key_for(who).public_bytes), START)
        for region in (PROVINCE, CITY, COUNTY, TOWNSHIP):
            app.open_account(region, "central")
    return World(app)


def read_models(app: Zhuisu) -> Any:
    """The projections of ``app``'s store, caught up with its log: an engine to query."""
    from projections import runner
    from store.engines import engine_for

    runner.catch_up(app)
    return engine_for(app.database_url)


# signing --------------------------------------------------------------------------
def signing_rule(app: Zhuisu, step: str, subject: UUID | str,
                 content: Mapping[str, Any]) -> tuple[StepRule, RegionPath]:
    """The rule a step is signed under and the region path of its subject."""
    if step.startswith("FundAccount."):
        account = app.load(FundAccount, subject)
        return money_rule(account.level), account.region_path
    rule = STEP_RULES[step]
    if step == "Household.Applied":
        return rule, app.region(content["village_code"]).path
    if step == "Project.Approved":
        return rule, app.region(content["region_code"]).path
    cls = Household if step.startswith("Household.") else Project
    return rule, app.load(cls, subject).region_path


def sign(world: World, step: str, subject: UUID | str, content: Mapping[str, Any], *,
         by: Mapping[str, str | None] | None = None,
         keys: Mapping[str, SigningKey] | None = None,
         where: RegionPath | None = None) -> dict[str, Any]:
    """A signed command for ``step``: every role of its rule signed by the default official.

    ``by`` maps a role to another official's code (None leaves the role unsigned); ``keys``
    maps an official's code to the key to sign with; ``where`` gives the region path when
    the subject does not exist yet.
    """
    if where is None:
        rule, path = signing_rule(world.app, step, subject, content)
    else:
        path = where
        rule = (money_rule(RegionLevel(list(where)[-1])) if step.startswith("FundAccount.")
                else STEP_RULES[step])
    chosen: dict[Role, str | None] = {
        role: official(DEFAULT_SIGNERS[(rule.area, level.value)][role], path[level.value])
        for role, level in rule.roles.items()}
    for role, code in (by or {}).items():
        chosen[Role(role)] = code
    signers = [(official_id(code), (keys or {}).get(code) or key_for(code), role)
               for role, code in chosen.items() if code is not None]
    return sign_command(step, subject, content, signers)


def run(world: World, step: str, subject: UUID | str, content: Mapping[str, Any],
        **kw: Any) -> dict[str, Any]:
    """Sign ``step`` with the default signers (see ``sign``) and execute it."""
    return world.app.execute(sign(world, step, subject, content, **kw))


def event_names(app: Zhuisu, aggregate_id: UUID | str) -> list[str]:
    return [type(e).__qualname__ for e in app.stored_events(UUID(str(aggregate_id)))]


def last_event(app: Zhuisu, aggregate_id: UUID | str) -> Any:
    return app.stored_events(UUID(str(aggregate_id)))[-1]


# households -----------------------------------------------------------------------
APPLIED_ON = D(2025, 1, 5)
REGISTERED_ON = D(2025, 1, 23)  # APPLIED_ON + 18 days through the identification procedure
EXIT_PROPOSED_ON = D(2025, 11, 1)
EXITED_ON = D(2025, 11, 12)  # EXIT_PROPOSED_ON + 11 days through the exit procedure


def head_name(code: str) -> str:
    return f"{code}户主"


def application(world: World, code: str, *, village: str = VILLAGE,
                day: D = APPLIED_ON, income_fen: int = 250_000,
                members: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The content of 农户申请: a head and a spouse, main cause illness."""
    if members is None:
        members = [
            {"name": head_name(code), "relation": "head",
             "id_number_hash": world.app.hash_id(id_number(person_number(f"{code}/head")))},
            {"name": f"{code}配偶", "relation": "spouse",
             "id_number_hash": world.app.hash_id(id_number(person_number(f"{code}/spouse")))},
        ]
    return {"household_code": code, "village_code": village, "effective_date": day.isoformat(),
            "head_name": members[0]["name"], "members": members, "main_cause": "illness",
            "secondary_causes": ["lack_of_skills"], "income_per_capita_fen": income_fen,
            "bank_account_hash": hashlib.sha256(f"bank/{code}".encode()).hexdigest()}


def identification_steps(applied_on: D = APPLIED_ON) -> list[tuple[str, dict[str, Any]]]:
    """Every step after the application, each on the earliest day the rules allow."""
    def day(n: int) -> str:
        return (applied_on + dt.timedelta(days=n)).isoformat()

    return [
        ("Household.AppraisedByVillage",
         {"effective_date": day(1), "votes_for": 30, "votes_against": 2, "votes_total": 35}),
        ("Household.VerifiedByVillage", {"effective_date": day(2), "findings": "入户核实属实"}),
        ("Household.NoticePosted", {"round": "first", "effective_date": day(3), "days": 7}),
        ("Household.ReviewedByTownship", {"effective_date": day(10), "opinion": "同意"}),
        ("Household.NoticePosted", {"round": "second", "effective_date": day(11), "days": 7}),
        ("Household.ApprovedByCounty",
         {"effective_date": day(18), "announcement_no": "镇府〔2025〕3号"}),
    ]


def a_household_applied(world: World, code: str = "H1", **kw: Any) -> UUID:
    hid = Household.create_id(code)
    run(world, "Household.Applied", hid, application(world, code, **kw))
    return hid


def a_household_through(world: World, steps: int, code: str = "H1",
                        applied_on: D = APPLIED_ON, **kw: Any) -> UUID:
    """A household that applied and went through the first ``steps`` identification steps."""
    hid = a_household_applied(world, code, day=applied_on, **kw)
    for step, content in identification_steps(applied_on)[:steps]:
        run(world, step, hid, content)
    return hid


def a_registered_household(world: World, code: str = "H1", applied_on: D = APPLIED_ON,
                           **kw: Any) -> UUID:
    """Registered (建档立卡) on ``applied_on`` + 18 days (REGISTERED_ON by default)."""
    return a_household_through(world, len(identification_steps()), code, applied_on, **kw)


def all_checks_met() -> dict[str, bool]:
    return {check: True for check in EXIT_CHECKS}


def exit_steps(code: str, proposed_on: D = EXIT_PROPOSED_ON,
               year: int = 2025) -> list[tuple[str, dict[str, Any]]]:
    def day(n: int) -> str:
        return (proposed_on + dt.timedelta(days=n)).isoformat()

    return [
        ("Household.ExitProposed",
         {"year": year, "effective_date": day(0), "income_per_capita_fen": 800_000,
          "income_line_fen": 730_000, "checks": all_checks_met()}),
        ("Household.ExitAppraised",
         {"effective_date": day(1), "votes_for": 28, "votes_against": 1, "votes_total": 33}),
        ("Household.ExitConfirmedByHousehold",
         {"effective_date": day(2), "confirmed_by": head_name(code), "method": "signature"}),
        ("Household.NoticePosted", {"round": "exit", "effective_date": day(3), "days": 7}),
        ("Household.ExitVerifiedByTownship", {"effective_date": day(10), "opinion": "核实达标"}),
        ("Household.ExitApprovedByCounty",
         {"effective_date": day(11), "announcement_no": "县府〔2025〕88号"}),
    ]


def an_exited_household(world: World, code: str = "H1", **kw: Any) -> UUID:
    """Registered on REGISTERED_ON, exited (脱贫) on EXITED_ON."""
    hid = a_registered_household(world, code, **kw)
    for step, content in exit_steps(code):
        run(world, step, hid, content)
    return hid


def a_removed_household(world: World, code: str = "H1", removed_on: D = D(2025, 6, 1)) -> UUID:
    hid = a_registered_household(world, code)
    run(world, "Household.RemovedFromRegister", hid, removal(removed_on))
    return hid


def removal(day: D, reason: str = "家庭成员为财政供养人员") -> dict[str, Any]:
    return {"effective_date": day.isoformat(), "reason": reason}


# money ------------------------------------------------------------------------------
FUNDED_ON = D(2025, 1, 2)


def new_movement_id() -> str:
    return str(uuid.uuid4())


def receipt(amount_fen: Any, *, day: D = FUNDED_ON, purpose: str = "special_fund",
            movement_id: str | None = None, document_no: str = "财农〔2025〕1号",
            source: str = "中央财政专项扶贫资金") -> dict[str, Any]:
    return {"movement_id": movement_id or new_movement_id(), "amount_fen": amount_fen,
            "effective_date": day.isoformat(), "purpose": purpose, "document_no": document_no,
            "source": source}


def allocation(to_account_id: UUID | str, amount_fen: Any, *, day: D = FUNDED_ON,
               purpose: str = "special_fund", movement_id: str | None = None,
               document_no: str = "财农〔2025〕2号") -> dict[str, Any]:
    return {"movement_id": movement_id or new_movement_id(), "to_account_id": str(to_account_id),
            "amount_fen": amount_fen, "effective_date": day.isoformat(), "purpose": purpose,
            "document_no": document_no}


def payment(payee_kind: str, payee_id: UUID | str, amount_fen: Any, *, day: D,
            purpose: str, project_id: UUID | str | None = None,
            movement_id: str | None = None, document_no: str = "镇财〔2025〕7号") -> dict[str, Any]:
    return {"movement_id": movement_id or new_movement_id(), "payee_kind": payee_kind,
            "payee_id": str(payee_id), "amount_fen": amount_fen, "effective_date": day.isoformat(),
            "purpose": purpose, "document_no": document_no,
            "project_id": str(project_id) if project_id else None}


def household_payment(household_id: UUID | str, amount_fen: Any, *, day: D = D(2025, 3, 1),
                      purpose: str = "hh_industry", **kw: Any) -> dict[str, Any]:
    return payment("household", household_id, amount_fen, day=day, purpose=purpose, **kw)


def recovery(of_movement_id: str, amount_fen: Any, *, day: D = D(2025, 7, 1),
             purpose: str = "hh_industry", reason: str = "清退户不应享受产业补助",
             movement_id: str | None = None) -> dict[str, Any]:
    """追回 part or all of a payment; ``purpose`` is the payment's own."""
    return {"movement_id": movement_id or new_movement_id(), "of_movement_id": of_movement_id,
            "amount_fen": amount_fen, "effective_date": day.isoformat(), "purpose": purpose,
            "document_no": "镇财追〔2025〕1号", "reason": reason}


def reversal(of_movement_id: str, amount_fen: Any, *, purpose: str, day: D = D(2025, 3, 2),
             reason: str = "录入错误冲正", movement_id: str | None = None) -> dict[str, Any]:
    """冲正 what is left of a movement; ``purpose`` is the movement's own."""
    return {"movement_id": movement_id or new_movement_id(), "of_movement_id": of_movement_id,
            "amount_fen": amount_fen, "effective_date": day.isoformat(), "purpose": purpose,
            "document_no": "镇财冲〔2025〕1号", "reason": reason}


def a_funded_account(world: World, region: str = TOWNSHIP, amount_fen: int = 1_000_000,
                     fund_source: str = "central", day: D = FUNDED_ON) -> UUID:
    """An account (opened in the world, or opened here) that received ``amount_fen``."""
    account = FundAccount.create_id(region, fund_source)
    if not world.app.exists(account):
        world.app.open_account(region, fund_source)
    run(world, "FundAccount.Received", account, receipt(amount_fen, day=day))
    return account


# projects ---------------------------------------------------------------------------
def project_approval(code: str = "PRJ1", *, region: str = VILLAGE,
                     purpose: str = "prj_village_infrastructure", budget_fen: int = 500_000,
                     day: D = D(2025, 2, 1),
                     beneficiaries: list[UUID | str] = ()) -> dict[str, Any]:
    return {"project_code": code, "name": f"{code} 通组路硬化", "region_code": region,
            "purpose_code": purpose, "budget_fen": budget_fen, "effective_date": day.isoformat(),
            "beneficiary_household_ids": [str(h) for h in beneficiaries]}


def an_approved_project(world: World, code: str = "PRJ1", **kw: Any) -> UUID:
    pid = Project.create_id(code)
    run(world, "Project.Approved", pid, project_approval(code, **kw))
    return pid
