"""Read views: what the HTTP API and the CLI show of an aggregate, as plain JSON values.

One shaping for both adapters, so ``GET /households/{id}`` and ``zhuisu show-household``
agree; list endpoints show the ``*_summary`` of each item (no events).  Views never show
a resident ID number (only keyed hashes, inside signed content) and never an official's
relatives (优亲厚友 checks read them; people do not).  Also for both: the step catalogue
(``step_catalogue``, ``GET /steps``) and the published derivation of aggregate ids from
their codes (``aggregate_id``, ``creation_subject``: ``GET /ids/{kind}/{code}``, ``zhuisu
id``, ``zhuisu sign``), which a client needs to sign a creation step.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from domain.application import STEPS, Zhuisu, step_fields
from domain.case import Case
from domain.errors import InvalidInput
from domain.fund_account import FundAccount
from domain.household import Household
from domain.roster import Roster
from domain.money import FundSource
from domain.official import Official
from domain.positions import POSITIONS, STEP_RULES, Area, StepRule, money_rules
from domain.project import Project
from domain.region import NAMESPACE, Region, Unit
from domain.signed import signed_content, step_name
from domain.signing import b64

EVENTS_PAGE = 100


def plain(value: Any) -> Any:
    """Dates as ISO strings, enums as their values, ids as strings; the rest as is."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def event_view(event: Any) -> dict[str, Any]:
    """One stored event: its step, record time, the signed content and who signed it.

    ``position`` is the event's version within its aggregate (1 = creation); the global
    order is the notification log that the audit layer serves.
    """
    return {
        "position": event.originator_version,
        "type": step_name(event),
        "recorded_at": event.timestamp.isoformat(),
        "fields": plain(signed_content(event)),
        "signatures": [plain(s) for s in getattr(event, "signatures", None) or []],
    }


def events_page(app: Zhuisu, aggregate_id: UUID, after: int = 0,
                limit: int = EVENTS_PAGE) -> list[dict[str, Any]]:
    return [event_view(e) for e in app.events.get(aggregate_id, gt=after or None, limit=limit)]


def household_summary(household: Household) -> dict[str, Any]:
    return {
        "id": str(household.id),
        "code": household.code,
        "status": household.status.value,
        "village_code": household.village_code,
        "members_count": len(household.members),
        "main_cause": household.main_cause,
        "version": household.version,
    }


def household_view(app: Zhuisu, household: Household, after: int = 0,
                   limit: int = EVENTS_PAGE) -> dict[str, Any]:
    return {
        **household_summary(household),
        "region_path": dict(household.region_path),
        "secondary_causes": list(household.secondary_causes),
        "helper_official_id": household.helper_official_id,
        "history": [{"effective_date": d.isoformat(), "status": s.value}
                    for d, s in household.history],
        "events": events_page(app, household.id, after, limit),
    }


def account_summary(account: FundAccount) -> dict[str, Any]:
    return {
        "id": str(account.id),
        "name": account.name,
        "region_code": account.region_code,
        "level": account.level.value,
        "fund_source": account.fund_source,
        "balance_fen": account.balance,
        "received_fen": account.received,
        "paid_out_fen": account.paid_out,
        "version": account.version,
    }


def account_view(app: Zhuisu, account: FundAccount, after: int = 0,
                 limit: int = EVENTS_PAGE) -> dict[str, Any]:
    return {**account_summary(account), "events": events_page(app, account.id, after, limit)}


def project_summary(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "code": project.code,
        "name": project.name,
        "region_code": project.region_code,
        "purpose_code": project.purpose_code,
        "budget_fen": project.budget_fen,
        "paid_fen": project.paid_fen,
        "approved_on": project.approved_on.isoformat(),
        "accepted_on": project.accepted_on.isoformat() if project.accepted_on else None,
        "version": project.version,
    }


def project_view(app: Zhuisu, project: Project, after: int = 0,
                 limit: int = EVENTS_PAGE) -> dict[str, Any]:
    return {**project_summary(project), "region_path": dict(project.region_path),
            "beneficiary_household_ids": list(project.beneficiaries),
            "events": events_page(app, project.id, after, limit)}


def region_view(region: Region, children: list[str]) -> dict[str, Any]:
    return {"id": str(region.id), "code": region.code, "name": region.name,
            "level": region.level.value, "parent_code": region.parent_code,
            "path": dict(region.path), "population": region.population,
            "children": children}


def official_summary(official: Official) -> dict[str, Any]:
    return {
        "id": str(official.id),
        "code": official.code,
        "name": official.name,
        "unit_code": official.unit_code,
        "region_code": official.region_code,
    }


def official_view(official: Official) -> dict[str, Any]:
    return {
        **official_summary(official),
        "positions": [
            {"kind": p.kind, "title": POSITIONS[p.kind].title, "region_code": p.region_code,
             "responsibility": p.responsibility, "start": p.start.isoformat(),
             "end": p.end.isoformat() if p.end else None}
            for p in official.positions
        ],
        "keys": [
            {"key_id": k.key_id, "public_key": b64(k.public_key),
             "valid_from": k.valid_from.isoformat(),
             "valid_until": k.valid_until.isoformat() if k.valid_until else None,
             "revoked": k.revoked_recorded_at is not None}
            for k in official.keys.values()
        ],
    }


def _signers(rule: StepRule, **when: str) -> list[dict[str, Any]]:
    """The rule's own ``signers()``: the positions the authoriser accepts, role by role."""
    return [{"role": role.value, "level": level.value, "positions": list(positions), **when}
            for role, level, positions in rule.signers()]


def step_catalogue() -> dict[str, dict[str, Any]]:
    """Every signed step: its fields, and who signs it in which role at which level.

    Derived from the very rule objects the authoriser checks (``domain.positions``): a
    procedure step's ``STEP_RULES`` entry; a money step's ``money_rules``, one per account
    level (``account_level``: the entry holds for accounts of that level; ``level`` is the
    level of the signer's position), and the entries that hold only for payments to one
    kind of payee (``payee_kind``).
    """
    out = {}
    for step, (cls, _) in STEPS.items():
        rule = STEP_RULES.get(step)
        if rule is not None:
            signers, area = _signers(rule), rule.area
        else:
            signers, area = [], Area.FUNDS
            for when, money in money_rules(step):  # the general rule of a level first
                seen = {(s["role"], s["level"], s["account_level"]) for s in signers}
                signers += [s for s in _signers(money, **when)
                            if (s["role"], s["level"], s["account_level"]) not in seen]
        out[step] = {"aggregate": cls.__name__, "area": area.value,
                     "fields": sorted(step_fields(step)), "signers": signers}
        if step in CREATION_CODES:
            kind, field = CREATION_CODES[step]
            out[step]["subject"] = {"kind": kind, "code_field": field}
    return out


# ids: how an aggregate's id follows from its code ---------------------------------------
def _account_id(code: str) -> Any:
    region, _, source = code.partition("/")
    if not region or source not in {s.value for s in FundSource}:
        raise InvalidInput(f"an account's code is REGION/FUND_SOURCE, the fund source one of "
                           f"{[s.value for s in FundSource]}", field="code")
    return FundAccount.create_id(region, source)


ID_KINDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "household": ("户编号 household code", Household.create_id),
    "project": ("项目编号 project code", Project.create_id),
    "account": ("REGION/FUND_SOURCE, e.g. 522625100/central", _account_id),
    "official": ("干部编号 official code", Official.create_id),
    "region": ("行政区划代码 region code", Region.create_id),
    "unit": ("单位编号 unit code", Unit.create_id),
    "case": ("案号 case number", Case.create_id),
    "roster": ("花名册导入编号 roster import id (a UUID)", Roster.create_id),
}
"""kind → (what its code is, the aggregate's own ``create_id``)."""

CREATION_CODES: dict[str, tuple[str, str]] = {
    "Household.Applied": ("household", "household_code"),
    "Project.Approved": ("project", "project_code"),
    "Roster.Imported": ("roster", "import_id"),
}
"""Creation steps: the kind of aggregate they create and the content field with its code."""

MAX_CODE = 100


def aggregate_id(kind: str, code: str) -> dict[str, str]:
    """The id of the aggregate of ``kind`` known by ``code``, and how it is derived.

    Every aggregate known by a code has the id ``uuid5(NAMESPACE, "{kind}:{code}")``
    (``domain.region.stable_id``), ``NAMESPACE`` being ``uuid5(NAMESPACE_URL,
    "https://zhuisu.example/ids")`` = ``69989ca4-9987-5a2e-a804-5dd7ed619731`` (RFC 9562
    name-based UUID, SHA-1); an account's code is ``REGION/FUND_SOURCE``.  Anyone can
    compute it offline; it is what a creation step's signers sign as its subject.
    """
    spec = ID_KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"unknown kind; one of {sorted(ID_KINDS)}", field="kind")
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE:
        raise InvalidInput(f"must be a non-empty code of at most {MAX_CODE} characters",
                           field="code")
    name = f"{kind}:{code}"
    return {"kind": kind, "code": code, "id": str(spec[1](code)), "code_is": spec[0],
            "derivation": f'uuid5({NAMESPACE}, "{name}")', "namespace": str(NAMESPACE),
            "name": name}


def creation_subject(step: str, content: Mapping[str, Any]) -> str | None:
    """The subject a creation step's signers sign, from the code in its content (None for
    a step on an existing aggregate, whose subject the client already knows)."""
    if step not in CREATION_CODES:
        return None
    kind, field = CREATION_CODES[step]
    code = content.get(field)
    if not isinstance(code, str) or not code.strip():
        raise InvalidInput(f"{step} needs {field}, the code its subject's id is derived from",
                           field=f"content.{field}")
    return aggregate_id(kind, code)["id"]


# replay (projections.replay.aggregate_as_of) -----------------------------------------------
def aggregate_view(found: Any) -> dict[str, Any]:
    """An aggregate as of a moment: its state then and its events up to then."""
    aggregate = found.aggregate
    out: dict[str, Any] = {"aggregate_id": str(aggregate.id), "type": type(aggregate).__name__,
                           "as_of": found.at.describe(), "version": found.version}
    if found.effective_state is not None:
        out["effective_state"] = found.effective_state
    else:
        out["state"] = _summary(aggregate)
    out["events"] = [event_view(e) for e in found.events]
    return out


def _summary(aggregate: Any) -> dict[str, Any]:
    if isinstance(aggregate, Household):
        return {**household_summary(aggregate),
                "history": [{"effective_date": d.isoformat(), "status": s.value}
                            for d, s in aggregate.history]}
    if isinstance(aggregate, FundAccount):
        return account_summary(aggregate)
    if isinstance(aggregate, Project):
        return project_summary(aggregate)
    if isinstance(aggregate, Official):
        return official_summary(aggregate)
    # other aggregates (regions, units, …): what every aggregate has; their events say more
    return {"id": str(aggregate.id), "version": aggregate.version}
