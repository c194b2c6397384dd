"""Administrative hierarchy (省 → 市/州 → 县 → 乡镇 → 村) and the units that work in it."""

from __future__ import annotations

import datetime as dt
import enum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput

NAMESPACE = uuid5(NAMESPACE_URL, "https://zhuisu.example/ids")


def stable_id(kind: str, code: str) -> UUID:
    """UUID for an entity known by a stable code (region, unit, official, household)."""
    return uuid5(NAMESPACE, f"{kind}:{code}")


class RegionLevel(str, enum.Enum):
    """省 province, 市 city, 县 county, 乡镇 township, 村 village."""

    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"

    @property
    def depth(self) -> int:
        return list(RegionLevel).index(self)

    @property
    def child(self) -> RegionLevel | None:
        levels = list(RegionLevel)
        return levels[self.depth + 1] if self.depth + 1 < len(levels) else None


RegionPath = dict[str, str]
"""Level value → region code, from the province down to the region itself."""


class Region(Aggregate):
    """A region of the hierarchy.  Its path names every ancestor by level."""

    @staticmethod
    def create_id(code: str, **_: object) -> UUID:
        return stable_id("region", code)

    @event("Created")
    def __init__(self, code: str, name: str, level: str, parent_code: str | None,
                 path: dict[str, str], population: int | None = None) -> None:
        self.code = code
        self.name = name
        self.level = RegionLevel(level)
        self.parent_code = parent_code
        self.path: RegionPath = dict(path)
        self.population = population
        self.holders: list[dict] = []  # positions held here: official, kind, start, end
        self.suspensions: dict[str, dict] = {}  # case id → {case_no, purposes}
        self.surveys: dict[str, dict] = {}  # survey id → satisfaction survey

    @classmethod
    def create(cls, code: str, name: str, level: RegionLevel, parent: Region | None,
               population: int | None = None) -> Region:
        """``population``: registered (户籍) population, the denominator of the poverty
        incidence (贫困发生率); optional, as it is often not known when a region is created."""
        if not code or not code.isascii() or " " in code:
            raise InvalidInput("must be a non-empty ASCII code without spaces", field="code")
        if not name:
            raise InvalidInput("must not be empty", field="name")
        if population is not None and (isinstance(population, bool)
                                       or not isinstance(population, int) or population <= 0):
            raise InvalidInput("must be a positive whole number of people", field="population")
        if level is RegionLevel.PROVINCE:
            if parent is not None:
                raise InvalidInput("a province has no parent region", field="parent_code")
            path = {}
        else:
            if parent is None:
                raise InvalidInput(f"a {level.value} needs a parent region", field="parent_code")
            if parent.level.child is not level:
                raise InvalidInput(
                    f"a {level.value} must sit under a {list(RegionLevel)[level.depth - 1].value},"
                    f" not a {parent.level.value}",
                    field="parent_code",
                )
            path = dict(parent.path)
        path[level.value] = code
        return cls(code=code, name=name, level=level.value,
                   parent_code=parent.code if parent else None, path=path, population=population)


    # who held which position here (for 一案双查) ----------------------------------------
    def record_holder(self, official_id: str, kind: str, responsibility: str,
                      start: dt.date) -> None:
        self._holder_appointed(official_id=official_id, kind=kind,
                               responsibility=responsibility, start=start)

    @event("HolderAppointed")
    def _holder_appointed(self, official_id: str, kind: str, responsibility: str,
                          start: dt.date) -> None:
        self.holders.append({"official_id": official_id, "kind": kind,
                             "responsibility": responsibility, "start": start, "end": None})

    def record_holder_left(self, official_id: str, kind: str, end: dt.date) -> None:
        if any(h["official_id"] == official_id and h["kind"] == kind and h["end"] is None
               for h in self.holders):
            self._holder_left(official_id=official_id, kind=kind, end=end)

    @event("HolderLeft")
    def _holder_left(self, official_id: str, kind: str, end: dt.date) -> None:
        for h in self.holders:
            if h["official_id"] == official_id and h["kind"] == kind and h["end"] is None:
                h["end"] = end

    def holders_on(self, day: dt.date) -> list[dict]:
        return [h for h in self.holders
                if h["start"] <= day and (h["end"] is None or day < h["end"])]

    # policy suspension (暂停政策) while a case is open --------------------------------
    def suspend_policies(self, case_id: str, case_no: str, purposes: list[str],
                         effective_date: dt.date) -> None:
        if case_id not in self.suspensions:
            self._policy_suspended(case_id=case_id, case_no=case_no, purposes=list(purposes),
                                   effective_date=effective_date)

    @event("PolicySuspended")
    def _policy_suspended(self, case_id: str, case_no: str, purposes: list[str],
                          effective_date: dt.date) -> None:
        self.suspensions[case_id] = {"case_no": case_no, "purposes": list(purposes)}

    def resume_policies(self, case_id: str, effective_date: dt.date) -> None:
        if case_id in self.suspensions:
            self._policy_resumed(case_id=case_id, effective_date=effective_date)

    @event("PolicyResumed")
    def _policy_resumed(self, case_id: str, effective_date: dt.date) -> None:
        self.suspensions.pop(case_id, None)

    def suspension_of(self, purpose: str) -> str | None:
        """The case number of an open case suspending ``purpose`` here, if any."""
        for _, s in sorted(self.suspensions.items()):
            if purpose in s["purposes"]:
                return s["case_no"]
        return None

    # 群众满意度 ---------------------------------------------------------------------
    def record_survey(self, survey_id: str, year: int, effective_date: dt.date,
                      surveyed: int, satisfied: int, recorded_by: str) -> bool:
        for name, v in (("surveyed", surveyed), ("satisfied", satisfied), ("year", year)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInput("must be a non-negative integer", field=name)
        if surveyed == 0:
            raise InvalidInput("a survey asks at least one household", field="surveyed")
        if satisfied > surveyed:
            raise InvalidInput("cannot exceed the households surveyed", field="satisfied")
        content = {"year": year, "surveyed": surveyed, "satisfied": satisfied}
        if survey_id in self.surveys:
            if self.surveys[survey_id] == content:
                return False
            raise InvalidInput(f"survey {survey_id} was recorded with other figures",
                               field="survey_id")
        self._surveyed(survey_id=survey_id, **content, effective_date=effective_date,
                       recorded_by=recorded_by)
        return True

    @event("SatisfactionSurveyed")
    def _surveyed(self, survey_id: str, year: int, surveyed: int, satisfied: int,
                  effective_date: dt.date, recorded_by: str) -> None:
        self.surveys[survey_id] = {"year": year, "surveyed": surveyed, "satisfied": satisfied}


class UnitKind(str, enum.Enum):
    """Kinds of unit (单位) that officials belong to."""

    PARTY_COMMITTEE = "party_committee"  # 党委
    GOVERNMENT = "government"  # 人民政府
    POVERTY_OFFICE = "poverty_office"  # 扶贫办
    FINANCE_BUREAU = "finance_bureau"  # 财政局 / 财政所
    VILLAGE_COMMITTEE = "village_committee"  # 村委会
    WORK_TEAM = "work_team"  # 驻村工作队
    DISCIPLINE_COMMISSION = "discipline_commission"  # 纪委监委


class Unit(Aggregate):
    """A unit (单位) at one region: a bureau, committee or village work team."""

    @staticmethod
    def create_id(code: str, **_: object) -> UUID:
        return stable_id("unit", code)

    @event("Established")
    def __init__(self, code: str, name: str, kind: str, region_code: str) -> None:
        self.code = code
        self.name = name
        self.kind = UnitKind(kind)
        self.region_code = region_code

    @classmethod
    def establish(cls, code: str, name: str, kind: str, region: Region) -> Unit:
        if not code or not code.isascii():
            raise InvalidInput("must be a non-empty ASCII code", field="code")
        try:
            UnitKind(kind)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[k.value for k in UnitKind]}", field="kind") from exc
        return cls(code=code, name=name, kind=kind, region_code=region.code)
