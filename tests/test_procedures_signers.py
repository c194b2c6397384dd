"""Who may sign: the step catalogue (``GET /steps``) and the authoriser are one source.

Every position ``GET /steps`` lists for a role is accepted by the authoriser when held in
the right region, and every other position refused, for every step (money steps for
every account level).  村账乡代管: a payment to a household from the township's account
may be prepared by the payee village's 报账员 (村会计), who then answers for it like any
signer — 优亲厚友 names them when the payee is their relative.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_registered_household,
    an_approved_project,
    household_payment,
    id_number,
    last_event,
    official,
    official_id,
    payment,
    person_number,
    read_models,
    run,
)

from domain.application import STEPS
from domain.authorisation import authorise, parse_signatures
from domain.errors import SignerNotAuthorised
from domain.fund_account import FundAccount
from domain.official import Official
from domain.positions import POSITIONS, STEP_RULES, StepRule, money_rule
from domain.region import Region, RegionLevel
from domain.signing import Role, SigningKey, b64, sign_command
from projections.flags import list_flags

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
DAY, START = D(2025, 3, 1), D(2020, 1, 1)
T = FundAccount.create_id(TOWNSHIP, "central")
VILLAGE_ACCOUNTANT = official("accountant", VILLAGE)


# the catalogue against the authoriser, every step, every position -----------------------
class Regions:
    """Two branches of one hierarchy: ``home`` (a full path down to a village) and, beside
    each of its regions, a sibling of the same level (``away``)."""

    def __init__(self) -> None:
        self.home: dict[str, Region] = {}
        self.away: dict[str, Region] = {}
        parent = None
        for level in RegionLevel:
            code = f"H{level.depth}"
            if parent is None:
                self.away[level.value] = Region.create(f"A{level.depth}", "旁", level, None)
            else:
                self.away[level.value] = Region.create(f"A{level.depth}", "旁", level, parent)
            parent = self.home[level.value] = Region.create(code, "本", level, parent)

    def path(self, down_to: RegionLevel = RegionLevel.VILLAGE) -> dict[str, str]:
        return dict(self.home[down_to.value].path)


class Signers:
    """For every position kind, officials holding it from 2020 at ``home`` (``a``, the one
    under test, and one for each role, to sign beside it) and at ``away``, each with a key."""

    def __init__(self, regions: Regions) -> None:
        self.officials: dict[str, Official] = {}
        self.keys: dict[str, SigningKey] = {}
        holders = [("a", regions.home), ("away", regions.away),
                   *((role.value, regions.home) for role in Role)]
        for kind, spec in POSITIONS.items():
            for who, region in holders:
                code = f"{kind}/{who}"
                o = Official(code=code, name=code, unit_code="U", region_code="X",
                             id_number_hash="0" * 64)
                o.take_position(kind, region[spec.level.value], START)
                key = SigningKey.from_seed(code.encode())
                o.register_key(b64(key.public_bytes), START)
                self.officials[str(o.id)] = o
                self.keys[code] = key

    def authorise(self, step: str, rule: StepRule, path: dict[str, str],
                  signers: dict[Role, str]) -> list[dict]:
        subject = uuid.uuid4()
        content = {"effective_date": DAY.isoformat(), "n": 1}
        envelope = sign_command(step, subject, content, [
            (str(Official.create_id(code)), self.keys[code], role)
            for role, code in signers.items()])
        return authorise(step=step, subject=subject, content=content,
                         signatures=parse_signatures(envelope["signatures"]), rule=rule,
                         region_path=path, day=DAY,
                         now=dt.datetime(2025, 3, 2, tzinfo=dt.UTC),
                         officials=self.officials)


def rules_of(step: str, entry: dict[str, Any]) -> list[tuple[StepRule, RegionLevel | None]]:
    """The rules the aggregates sign ``step`` under where the catalogue entry holds, each
    with the level the subject's path ends at (None: a household's, down to the village)."""
    if step in STEP_RULES:
        return [(STEP_RULES[step], None)]
    level = RegionLevel(entry["account_level"])
    if entry.get("payee_kind") == "household":
        return [(money_rule(level, "household"), None)]
    found = [(money_rule(level), level)]  # receipts, allocations, payments to projects …
    if step == "FundAccount.Disbursed":
        found.append((money_rule(level, "household"), None))  # … and to households
    return found


def applies(entry: dict[str, Any], other: dict[str, Any], household: bool) -> bool:
    """Does catalogue entry ``other`` hold where ``entry`` does (same account level; a
    payee-kind entry only for a payment to such a payee)?"""
    return (other.get("account_level") == entry.get("account_level")
            and other.get("payee_kind") in (None, "household" if household else None))


def test_every_listed_signer_is_accepted_and_every_other_position_refused(api) -> None:
    catalogue = api.client.get("/steps").json()
    assert set(catalogue) == set(STEPS)
    regions = Regions()
    signers = Signers(regions)
    checked = 0
    for step, spec in catalogue.items():
        entries = spec["signers"]
        assert entries, step
        for entry in entries:
            assert entry["positions"], (step, entry)  # every listed slot can be signed
            for rule, ends_at in rules_of(step, entry):
                household = ends_at is None and step.startswith("FundAccount.")
                path = regions.path(ends_at or RegionLevel.VILLAGE)
                here = [e for e in entries if applies(entry, e, household)]
                role = Role(entry["role"])
                # the other roles: each signed by a holder of the first position listed for it
                others = {Role(e["role"]): f"{e['positions'][0]}/{e['role']}"
                          for e in reversed(here) if e["role"] != entry["role"]}
                listed = {k for e in here if e["role"] == entry["role"] for k in e["positions"]}
                for kind in POSITIONS:
                    who = {**others, role: f"{kind}/a"}
                    if kind in listed:
                        accepted = signers.authorise(step, rule, path, who)
                        mine = next(s for s in accepted if s["role"] == role.value)
                        assert mine["position"] == kind, (step, entry, kind)
                        with pytest.raises(SignerNotAuthorised):  # the same post elsewhere
                            signers.authorise(step, rule, path, {**others, role: f"{kind}/away"})
                    else:
                        with pytest.raises(SignerNotAuthorised) as refused:
                            signers.authorise(step, rule, path, who)
                        assert refused.value.field.endswith(".official_id")
                        assert refused.value.details["role"] == role.value, (step, kind)
                    checked += 1
    assert checked > 2000


def test_the_catalogue_lists_the_village_preparer_of_a_household_payment(api) -> None:
    disbursed = api.client.get("/steps").json()["FundAccount.Disbursed"]["signers"]
    village = [e for e in disbursed if e["level"] == "village"]
    assert village == [{"role": "preparer", "level": "village",
                        "positions": ["village_accountant"], "account_level": "township",
                        "payee_kind": "household"}]
    # no village post reviews or approves money, and every other entry is at the account's level
    assert all(e["level"] == e["account_level"] for e in disbursed if e not in village)
    received = api.client.get("/steps").json()["FundAccount.Received"]["signers"]
    assert {e["account_level"] for e in received} == {"province", "city", "county", "township"}
    assert all("payee_kind" not in e for e in received)


# 村账乡代管 end to end -----------------------------------------------------------------
def pay_h1(world, hid, *, by: dict[str, str], account=T, day=DAY) -> dict[str, Any]:
    content = household_payment(hid, 50_000, day=day)
    run(world, "FundAccount.Disbursed", account, content, by=by)
    return content


def test_a_village_accountant_prepares_a_household_payment_from_the_township_account(
        world) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = a_registered_household(world, "H1")
    pay_h1(world, hid, by={"preparer": VILLAGE_ACCOUNTANT})

    paid = last_event(world.app, T)
    assert type(paid).__qualname__ == "FundAccount.Disbursed"
    assert [(s["role"], s["position"], s["position_region"]) for s in paid.signatures] == [
        ("preparer", "village_accountant", VILLAGE),
        ("reviewer", "township_head", TOWNSHIP),
        ("approver", "township_party_secretary", TOWNSHIP)]


@pytest.mark.parametrize("case", ["other village's accountant", "village director prepares",
                                  "village accountant reviews", "from the county account",
                                  "to a supplier"])
def test_village_signers_are_refused_outside_the_household_payment_of_their_village(
        world, case: str) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    county = a_funded_account(world, COUNTY, 1_000_000)
    hid = a_registered_household(world, "H1")
    account, by, content = T, {"preparer": VILLAGE_ACCOUNTANT}, household_payment(
        hid, 50_000, day=DAY)
    field = "signatures[0].official_id"
    if case == "other village's accountant":
        by = {"preparer": official("accountant", OTHER_VILLAGE)}
    elif case == "village director prepares":
        by = {"preparer": official("director", VILLAGE)}
    elif case == "village accountant reviews":
        by, field = {"reviewer": VILLAGE_ACCOUNTANT}, "signatures[1].official_id"
    elif case == "from the county account":
        account = county
    else:
        pid = an_approved_project(world, "PRJ1")
        content = payment("supplier", "石材供应商", 50_000, day=DAY,
                          purpose="prj_village_infrastructure", project_id=pid)
    before = world.app.load(FundAccount, account).version
    with pytest.raises(SignerNotAuthorised) as refused:
        run(world, "FundAccount.Disbursed", account, content, by=by)
    assert refused.value.field == field
    assert world.app.load(FundAccount, account).version == before  # nothing stored


@pytest.mark.parametrize("declared", ["before the payment", "after the payment"])
def test_a_payee_related_to_the_village_preparer_is_flagged(world, declared: str) -> None:
    """优亲厚友: the village accountant prepared the payment list for his cousin's household."""
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = a_registered_household(world, "H1")
    cousin = id_number(person_number("H1/spouse"))
    if declared == "before the payment":
        world.app.declare_relative(VILLAGE_ACCOUNTANT, cousin, "表兄妹")
    by_village = pay_h1(world, hid, by={"preparer": VILLAGE_ACCOUNTANT})
    by_township = pay_h1(world, hid, by={}, day=D(2025, 4, 1))  # the township's own clerk
    if declared == "after the payment":
        world.app.declare_relative(VILLAGE_ACCOUNTANT, cousin, "表兄妹")

    found = list_flags(read_models(world.app), rule_id="PAYEE_RELATIVE_OF_SIGNER")
    assert [f["subject_id"] for f in found] == [by_village["movement_id"]]
    [flag] = found
    assert flag["detail"]["official_code"] == VILLAGE_ACCOUNTANT
    assert flag["detail"]["relation"] == "表兄妹"
    assert official_id(VILLAGE_ACCOUNTANT) in flag["signers"]
    assert {"kind": "official", "ref": official_id(VILLAGE_ACCOUNTANT)} in flag["evidence"]
    assert by_township["movement_id"] != flag["subject_id"]
