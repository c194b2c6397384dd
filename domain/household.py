"""Registered poor households (建档立卡贫困户) and their procedures.

Identification (精准识别): 农户申请 → 民主评议 → 村委会和驻村工作队核实 → 第一次公示 →
乡镇审核 → 第二次公示 → 县级审批/公告.  A household is *registered* only after county
approval.  Exit (脱贫退出): 提出 → 民主评议 → 农户签字确认 → 公示 → 乡镇核实 → 县级批准.
Removal (清退) and relapse (返贫) are signed steps too.  Every step is an event carrying
its signatures; steps out of order are refused with ``StepOutOfOrder``.

Why one file: one aggregate whose procedure (申请 → 评议 → 公示 → 审批 → 帮扶 → 退出 /
清退 / 返贫) is one state machine; every step checks the state the others leave, so the
steps are read together.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.errors import (
    ExitChecksFailed,
    HouseholdNotRegistered,
    InvalidInput,
    NoticePeriodNotElapsed,
    ObjectionsOutstanding,
    StepOutOfOrder,
)
from domain.money import Purpose
from domain.positions import STEP_RULES
from domain.region import RegionPath, stable_id
from domain.signed import Authoriser, SignedAggregate, business_date, step_name
from domain.signing import canonical_json

NOTICE_DAYS_MIN = 7  # 公示期不少于7天
NOTICE_DAYS_MAX = 90  # a notice longer than a quarter is an error of entry, not a notice


class PovertyCause(str, enum.Enum):
    """致贫原因."""

    ILLNESS = "illness"  # 因病
    DISABILITY = "disability"  # 因残
    EDUCATION = "education"  # 因学
    DISASTER = "disaster"  # 因灾
    LACK_OF_LAND = "lack_of_land"  # 缺土地
    LACK_OF_WATER = "lack_of_water"  # 缺水
    LACK_OF_SKILLS = "lack_of_skills"  # 缺技术
    LACK_OF_LABOUR = "lack_of_labour"  # 缺劳力
    LACK_OF_FUNDS = "lack_of_funds"  # 缺资金
    POOR_TRANSPORT = "poor_transport"  # 交通条件落后
    LACK_OF_MOTIVATION = "lack_of_motivation"  # 自身发展动力不足
    OTHER = "other"  # 其他


class Status(str, enum.Enum):
    APPLIED = "applied"
    APPRAISED = "appraised"
    VERIFIED = "verified"
    FIRST_NOTICE = "first_notice"
    TOWNSHIP_REVIEWED = "township_reviewed"
    SECOND_NOTICE = "second_notice"
    REGISTERED = "registered"
    EXIT_PROPOSED = "exit_proposed"
    EXIT_APPRAISED = "exit_appraised"
    EXIT_CONFIRMED = "exit_confirmed"
    EXIT_NOTICE = "exit_notice"
    EXIT_VERIFIED = "exit_verified"
    EXITED = "exited"
    REMOVED = "removed"
    REJECTED = "rejected"


S = Status
# Statuses in which the household is on the register (建档立卡) and may receive aid.
ON_REGISTER = frozenset({S.REGISTERED, S.EXIT_PROPOSED, S.EXIT_APPRAISED, S.EXIT_CONFIRMED,
                         S.EXIT_NOTICE, S.EXIT_VERIFIED})
NOTICE_AFTER = {"first": S.VERIFIED, "second": S.TOWNSHIP_REVIEWED, "exit": S.EXIT_CONFIRMED}
NOTICE_STATUS = {"first": S.FIRST_NOTICE, "second": S.SECOND_NOTICE, "exit": S.EXIT_NOTICE}

EXIT_CHECKS = ("food", "clothing", "compulsory_education", "basic_medical", "safe_housing",
               "safe_drinking_water")
"""两不愁 (food, clothing) 三保障 (education, medical care, housing) + safe drinking water."""

# Default income lines per person and year, in fen: the national poverty line to 2020,
# then the monitoring line for relapse prevention (防返贫监测).  A command may use a
# higher line, never a lower one.
INCOME_LINES_FEN = {
    2014: 280_000, 2015: 285_500, 2016: 300_000, 2017: 333_500, 2018: 353_500,
    2019: 374_700, 2020: 400_000, 2021: 600_000, 2022: 630_000, 2023: 660_000,
    2024: 700_000, 2025: 730_000, 2026: 760_000,
}


def _nonneg_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("must be a non-negative integer", field=field)
    return value


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a non-empty string", field=field)
    return value


def _members(members: object) -> list[dict[str, Any]]:
    if not isinstance(members, (list, tuple)) or not members:
        raise InvalidInput("a household has at least one member", field="members")
    out, heads, seen = [], 0, set()
    for i, m in enumerate(members):
        if not isinstance(m, Mapping):
            raise InvalidInput("must be an object", field=f"members[{i}]")
        unknown = sorted(set(m) - {"name", "id_number_hash", "relation"})
        if "id_number" in m:
            raise InvalidInput("send only id_number_hash; a clear ID number is never stored or "
                               "signed (zhuisu sign hashes it)", field=f"members[{i}].id_number")
        if unknown:
            raise InvalidInput("a member has name, id_number_hash and relation only",
                               field=f"members[{i}].{unknown[0]}")
        h = m.get("id_number_hash")
        if not isinstance(h, str) or len(h) != 64:
            raise InvalidInput("must be the 64-hex keyed hash of the ID number, never the number",
                               field=f"members[{i}].id_number_hash")
        if h in seen:
            raise InvalidInput("the same person is listed twice", field=f"members[{i}].id_number_hash")
        seen.add(h)
        relation = _text(m.get("relation"), f"members[{i}].relation")
        heads += relation == "head"
        out.append({"name": _text(m.get("name"), f"members[{i}].name"),
                    "id_number_hash": h, "relation": relation})
    if heads != 1:
        raise InvalidInput("exactly one member has relation 'head' (户主)", field="members")
    return out


ASSISTANCE_STEPS = frozenset({"HelperAssigned", "AnnualReviewRecorded"})
"""Steps beside the procedure, which may be recorded for any date since the application."""


class Household(SignedAggregate):
    """A household (农户) going through identification, assistance, exit or removal."""

    class Event(SignedAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            """Keep the date of the latest procedure step: the procedure never goes back in
            time, so the register's history (``status_on``) stays in business-date order."""
            super().apply(aggregate)
            day = vars(self).get("effective_date")
            if day is not None and step_name(self).split(".")[-1] not in ASSISTANCE_STEPS:
                aggregate.last_step_on = max(aggregate.last_step_on, day)

    @staticmethod
    def create_id(household_code: str, **_: object) -> UUID:
        return stable_id("household", household_code)

    # 农户申请 -------------------------------------------------------------------
    @classmethod
    def apply_for_registration(
        cls, *, household_code: str, village_code: str, region_path: RegionPath,
        effective_date: dt.date, head_name: str, members: Sequence[Mapping[str, Any]],
        main_cause: str, secondary_causes: Sequence[str], income_per_capita_fen: int,
        bank_account_hash: str | None, authorise: Authoriser,
    ) -> Household:
        content = {
            "household_code": _text(household_code, "household_code"),
            "village_code": _text(village_code, "village_code"),
            "effective_date": business_date(effective_date),
            "head_name": _text(head_name, "head_name"),
            "members": _members(members),
            "main_cause": cls._cause(main_cause, "main_cause"),
            "secondary_causes": [cls._cause(c, f"secondary_causes[{i}]")
                                 for i, c in enumerate(secondary_causes)],
            "income_per_capita_fen": _nonneg_int(income_per_capita_fen, "income_per_capita_fen"),
            "bank_account_hash": bank_account_hash,
        }
        if content["main_cause"] in content["secondary_causes"]:
            raise InvalidInput("the main cause is not also a secondary cause", field="secondary_causes")
        if region_path.get("village") != village_code:
            raise InvalidInput("region path does not end at the village", field="village_code")
        hid = cls.create_id(household_code)
        signatures = authorise(step="Household.Applied", subject=hid, content=content,
                               rule=STEP_RULES["Household.Applied"], region_path=region_path,
                               day=content["effective_date"])
        return cls(**content, region_path=dict(region_path), signatures=signatures)

    @staticmethod
    def _cause(value: object, field: str) -> str:
        try:
            return PovertyCause(value).value
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[c.value for c in PovertyCause]}",
                               field=field) from exc

    @event("Applied")
    def __init__(self, household_code: str, village_code: str, effective_date: dt.date,
                 head_name: str, members: list[dict], main_cause: str,
                 secondary_causes: list[str], income_per_capita_fen: int,
                 bank_account_hash: str | None, region_path: dict[str, str],
                 signatures: list[dict], batch: dict[str, Any] | None = None) -> None:
        """``batch``: imported from the national register's 花名册 (``Roster.Imported``,
        ``domain.batch``): the import, its row, the file rows, and the exit date if the
        household had exited; on the register from ``effective_date`` (首次识别时间).
        None (and not part of the signed content) for a household that applied here."""
        self.code = household_code
        self.village_code = village_code
        self.region_path = dict(region_path)
        self.head_name = head_name
        self.members = list(members)
        self.main_cause = main_cause
        self.secondary_causes = list(secondary_causes)
        self.income_per_capita_fen = income_per_capita_fen
        self.bank_account_hash = bank_account_hash
        self.status = Status.APPLIED
        self.applied_on = effective_date
        self.last_step_on = effective_date
        self.history: list[tuple[dt.date, Status]] = []  # register transitions by business date
        self.notice: dict[str, Any] | None = None
        self.objections: dict[str, bool | None] = {}  # open objections → None until resolved
        self.helper_official_id: str | None = None
        self.exit_year: int | None = None
        self.relapses = 0
        self.accepted = {}
        if batch is None:  # an imported household is retried as its roster import
            self._init_accepted("Household.Applied", {
                "household_code": household_code, "village_code": village_code,
                "effective_date": effective_date, "head_name": head_name, "members": members,
                "main_cause": main_cause, "secondary_causes": secondary_causes,
                "income_per_capita_fen": income_per_capita_fen,
                "bank_account_hash": bank_account_hash})
        if batch is not None:
            self.status = Status.REGISTERED
            self.history.append((effective_date, Status.REGISTERED))
            if batch.get("exited_on"):
                exited = dt.date.fromisoformat(str(batch["exited_on"]))
                self.status = Status.EXITED
                self.history.append((exited, Status.EXITED))
                self.exit_year = exited.year
                self.last_step_on = max(self.last_step_on, exited)

    @classmethod
    def import_row(cls, *, row: Mapping[str, Any], index: int, import_id: str,
                   region_path: RegionPath, signatures: list[dict]) -> Household:
        """A household of a roster import (花名册), on the register since its 首次识别时间;
        its signatures are the import's (over the manifest that commits to the row)."""
        where = f"rows[{index}]"
        try:
            content = {
                "household_code": _text(row["household_code"], "household_code"),
                "village_code": _text(row["village_code"], "village_code"),
                "effective_date": business_date(row["effective_date"]),
                "head_name": _text(row["head_name"], "head_name"),
                "members": _members(row["members"]),
                "main_cause": cls._cause(row["main_cause"], "main_cause"),
                "secondary_causes": [cls._cause(c, f"secondary_causes[{i}]")
                                     for i, c in enumerate(row["secondary_causes"])],
                "income_per_capita_fen": _nonneg_int(row["income_per_capita_fen"],
                                                     "income_per_capita_fen"),
                "bank_account_hash": row["bank_account_hash"],
            }
            exited = row.get("exited_on")
            if exited is not None:
                exited = business_date(exited, "exited_on")
                if exited < content["effective_date"]:
                    raise InvalidInput("a household exits after it was registered",
                                       field="exited_on")
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"{where}.{exc.field}") from exc
        if region_path.get("village") != content["village_code"]:
            raise InvalidInput("region path does not end at the village",
                               field=f"{where}.village_code")
        return cls(**content, region_path=dict(region_path), signatures=signatures,
                   batch={"import_id": import_id, "row": index,
                          "exited_on": exited.isoformat() if exited else None,
                          "source_rows": list(row.get("source_rows") or [])})

    # register queries -----------------------------------------------------------
    def status_on(self, day: dt.date) -> Status | None:
        """The register status effective on a business date (None: never on the register)."""
        status = None
        for when, s in sorted(self.history, key=lambda t: t[0]):
            if when <= day:
                status = s
        return status

    def check_can_receive(self, day: dt.date, purpose: Purpose, field: str = "payee_id") -> None:
        """A household payment needs the household on the register at the payment's date,
        or exited and the purpose one that continues after exit (脱贫不脱政策)."""
        status = self.status_on(day)
        if status is S.REGISTERED:
            return
        if status is S.EXITED and purpose.allowed_after_exit:
            return
        paid = day.isoformat()
        if status is None:
            what = f"was not registered on {paid}"
        else:  # name the date of the removal (or exit) itself, then the payment's
            since = self.status_since(day)  # str(date): YYYY-MM-DD
            what = (f"had been removed (清退) on {since}; the payment is dated {paid}"
                    if status is S.REMOVED else
                    f"had exited on {since} and {purpose.code} does not continue after exit; "
                    f"the payment is dated {paid}")
        raise HouseholdNotRegistered(f"household {self.code} {what}", field=field,
                                     household_code=self.code)

    def status_since(self, day: dt.date) -> dt.date | None:
        """The business date of the register transition in force on ``day``."""
        since = None
        for when, _ in sorted(self.history, key=lambda t: t[0]):
            if when <= day:
                since = when
        return since

    @property
    def is_registered(self) -> bool:
        return self.status in ON_REGISTER

    # the procedure ------------------------------------------------------------
    def _begin(self, step: str, content: dict[str, Any], allowed: set[Status] | frozenset[Status],
               authorise: Authoriser, *, after_notice: bool = False) -> list[dict] | None:
        """Common head of every step: retry check, order check, notice rules, signatures.

        Returns the signatures to store, or None when this exact step was already accepted.
        """
        day = business_date(content.get("effective_date"))
        encoded = canonical_json(content)  # once, for the retry check and every signer
        if self.already_accepted(f"Household.{step}", encoded):
            return None
        if self.status not in allowed:
            raise StepOutOfOrder(
                f"{step} needs the household in {sorted(s.value for s in allowed)}, "
                f"but household {self.code} is {self.status.value}", field="step",
                status=self.status.value)
        if day < self.applied_on:
            raise InvalidInput("is before the household's application", field="effective_date")
        if step not in ASSISTANCE_STEPS and day < self.last_step_on:
            raise InvalidInput(f"is before the household's previous step on {self.last_step_on}",
                               field="effective_date")
        if after_notice:
            assert self.notice is not None
            ends = self.notice["posted_on"] + dt.timedelta(days=self.notice["days"])
            if day < ends:
                raise NoticePeriodNotElapsed(
                    f"the {self.notice['round']} notice posted {self.notice['posted_on']} runs "
                    f"until {ends.isoformat()}", field="effective_date")
            if any(v is None for v in self.objections.values()):
                raise ObjectionsOutstanding(
                    f"objections {sorted(k for k, v in self.objections.items() if v is None)} "
                    "are unresolved", field="step")
        return authorise(step=f"Household.{step}", subject=self.id, content=encoded,
                         rule=STEP_RULES[f"Household.{step}"], region_path=self.region_path, day=day)

    def appraise(self, *, effective_date: dt.date, votes_for: int, votes_against: int,
                 votes_total: int, authorise: Authoriser) -> None:
        """民主评议: villagers' representatives vote; a majority of those present carries it."""
        c = {"effective_date": effective_date, **_votes(votes_for, votes_against, votes_total)}
        if (sig := self._begin("AppraisedByVillage", c, {S.APPLIED}, authorise)) is not None:
            self._appraised(**c, signatures=sig)

    @event("AppraisedByVillage")
    def _appraised(self, effective_date: dt.date, votes_for: int, votes_against: int,
                   votes_total: int, signatures: list[dict]) -> None:
        self.status = S.APPRAISED if votes_for * 2 > votes_total else S.REJECTED

    def verify(self, *, effective_date: dt.date, findings: str, authorise: Authoriser) -> None:
        """村委会和驻村工作队入户核实."""
        c = {"effective_date": effective_date, "findings": _text(findings, "findings")}
        if (sig := self._begin("VerifiedByVillage", c, {S.APPRAISED}, authorise)) is not None:
            self._verified(**c, signatures=sig)

    @event("VerifiedByVillage")
    def _verified(self, effective_date: dt.date, findings: str, signatures: list[dict]) -> None:
        self.status = S.VERIFIED

    def post_notice(self, *, round: str, effective_date: dt.date, days: int,
                    authorise: Authoriser) -> None:
        """公示: first (village), second (after township review) or exit notice, ≥ 7 days."""
        if round not in NOTICE_AFTER:
            raise InvalidInput(f"must be one of {sorted(NOTICE_AFTER)}", field="round")
        if not NOTICE_DAYS_MIN <= _nonneg_int(days, "days") <= NOTICE_DAYS_MAX:
            raise InvalidInput(f"a public notice runs at least {NOTICE_DAYS_MIN} and at most "
                               f"{NOTICE_DAYS_MAX} days", field="days")
        c = {"round": round, "effective_date": effective_date, "days": days}
        if (sig := self._begin("NoticePosted", c, {NOTICE_AFTER[round]}, authorise)) is not None:
            self._notice_posted(**c, signatures=sig)

    @event("NoticePosted")
    def _notice_posted(self, round: str, effective_date: dt.date, days: int,
                       signatures: list[dict]) -> None:
        self.status = NOTICE_STATUS[round]
        self.notice = {"round": round, "posted_on": effective_date, "days": days}
        self.objections = {}

    def raise_objection(self, *, objection_id: str, effective_date: dt.date, summary: str,
                        authorise: Authoriser) -> None:
        """A villager objects during a notice; recorded by village staff."""
        c = {"objection_id": _text(objection_id, "objection_id"), "effective_date": effective_date,
             "summary": _text(summary, "summary")}
        if self.already_accepted("Household.ObjectionRaised", c):
            return
        if objection_id in self.objections:
            raise InvalidInput(f"objection {objection_id} already raised", field="objection_id")
        sig = self._begin("ObjectionRaised", c, set(NOTICE_STATUS.values()), authorise)
        assert sig is not None and self.notice is not None
        if effective_date < self.notice["posted_on"]:
            raise InvalidInput("is before the notice was posted", field="effective_date")
        self._objection_raised(**c, signatures=sig)

    @event("ObjectionRaised")
    def _objection_raised(self, objection_id: str, effective_date: dt.date, summary: str,
                          signatures: list[dict]) -> None:
        self.objections[objection_id] = None

    def resolve_objection(self, *, objection_id: str, effective_date: dt.date, upheld: bool,
                          resolution: str, authorise: Authoriser) -> None:
        """The township settles an objection; an upheld objection ends the procedure."""
        if not isinstance(upheld, bool):
            raise InvalidInput("must be true or false", field="upheld")
        c = {"objection_id": objection_id, "effective_date": effective_date, "upheld": upheld,
             "resolution": _text(resolution, "resolution")}
        if self.already_accepted("Household.ObjectionResolved", c):
            return
        if self.objections.get(objection_id, False) is not None:
            raise InvalidInput(f"no open objection {objection_id}", field="objection_id")
        sig = self._begin("ObjectionResolved", c, set(NOTICE_STATUS.values()), authorise)
        assert sig is not None
        self._objection_resolved(**c, signatures=sig)

    @event("ObjectionResolved")
    def _objection_resolved(self, objection_id: str, effective_date: dt.date, upheld: bool,
                            resolution: str, signatures: list[dict]) -> None:
        self.objections[objection_id] = upheld
        if upheld:
            if self.status is S.EXIT_NOTICE:  # the exit is stopped; the household stays registered
                self.status = S.REGISTERED
            else:
                self.status = S.REJECTED

    def review_by_township(self, *, effective_date: dt.date, opinion: str,
                           authorise: Authoriser) -> None:
        """乡镇审核, after the first notice has run its course."""
        c = {"effective_date": effective_date, "opinion": _text(opinion, "opinion")}
        if (sig := self._begin("ReviewedByTownship", c, {S.FIRST_NOTICE}, authorise,
                               after_notice=True)) is not None:
            self._reviewed_by_township(**c, signatures=sig)

    @event("ReviewedByTownship")
    def _reviewed_by_township(self, effective_date: dt.date, opinion: str,
                              signatures: list[dict]) -> None:
        self.status = S.TOWNSHIP_REVIEWED

    def approve_by_county(self, *, effective_date: dt.date, announcement_no: str,
                          authorise: Authoriser) -> None:
        """县级审批并公告: the household is registered (建档立卡) from this date."""
        c = {"effective_date": effective_date,
             "announcement_no": _text(announcement_no, "announcement_no")}
        if (sig := self._begin("ApprovedByCounty", c, {S.SECOND_NOTICE}, authorise,
                               after_notice=True)) is not None:
            self._approved_by_county(**c, signatures=sig)

    @event("ApprovedByCounty")
    def _approved_by_county(self, effective_date: dt.date, announcement_no: str,
                            signatures: list[dict]) -> None:
        self.status = S.REGISTERED
        self.history.append((effective_date, S.REGISTERED))

    # assistance ---------------------------------------------------------------
    def assign_helper(self, *, official_id: str, effective_date: dt.date,
                      authorise: Authoriser) -> None:
        """帮扶责任人 assigned (about five households each)."""
        c = {"official_id": _text(official_id, "official_id"), "effective_date": effective_date}
        if (sig := self._begin("HelperAssigned", c, ON_REGISTER, authorise)) is not None:
            self._helper_assigned(**c, signatures=sig)

    @event("HelperAssigned")
    def _helper_assigned(self, official_id: str, effective_date: dt.date,
                         signatures: list[dict]) -> None:
        self.helper_official_id = official_id

    def record_annual_review(self, *, year: int, effective_date: dt.date,
                             income_per_capita_fen: int, members_count: int, notes: str,
                             authorise: Authoriser) -> None:
        """一年一评: income and household size re-measured each year."""
        c = {"year": _year(year), "effective_date": effective_date,
             "income_per_capita_fen": _nonneg_int(income_per_capita_fen, "income_per_capita_fen"),
             "members_count": _nonneg_int(members_count, "members_count"), "notes": notes or ""}
        if (sig := self._begin("AnnualReviewRecorded", c, ON_REGISTER | {S.EXITED},
                               authorise)) is not None:
            self._annual_review(**c, signatures=sig)

    @event("AnnualReviewRecorded")
    def _annual_review(self, year: int, effective_date: dt.date, income_per_capita_fen: int,
                       members_count: int, notes: str, signatures: list[dict]) -> None:
        self.income_per_capita_fen = income_per_capita_fen

    # exit 脱贫退出 ---------------------------------------------------------------
    def propose_exit(self, *, year: int, effective_date: dt.date, income_per_capita_fen: int,
                     income_line_fen: int, checks: Mapping[str, bool],
                     authorise: Authoriser) -> None:
        """Exit proposal: income above the year's line and 两不愁三保障 all met, or refused."""
        year = _year(year)
        line = INCOME_LINES_FEN.get(year)
        if line is None:
            raise InvalidInput(f"no income line is known for {year}", field="year")
        if _nonneg_int(income_line_fen, "income_line_fen") < line:
            raise InvalidInput(f"the {year} line is {line} fen; a lower line may not be used",
                               field="income_line_fen")
        if not isinstance(checks, Mapping) or set(checks) != set(EXIT_CHECKS) or \
                not all(isinstance(v, bool) for v in checks.values()):
            raise InvalidInput(f"must give true/false for each of {list(EXIT_CHECKS)}", field="checks")
        c = {"year": year, "effective_date": effective_date,
             "income_per_capita_fen": _nonneg_int(income_per_capita_fen, "income_per_capita_fen"),
             "income_line_fen": income_line_fen, "checks": dict(checks)}
        if self.already_accepted("Household.ExitProposed", c):
            return
        failed = [k for k in EXIT_CHECKS if not checks[k]]
        if failed:
            raise ExitChecksFailed(f"两不愁三保障 not met: {', '.join(failed)}", field="checks",
                                   failed=failed)
        if income_per_capita_fen <= income_line_fen:
            raise ExitChecksFailed(
                f"income per capita {income_per_capita_fen} fen is not above the {year} line "
                f"{income_line_fen} fen", field="income_per_capita_fen")
        sig = self._begin("ExitProposed", c, {S.REGISTERED}, authorise)
        assert sig is not None
        self._exit_proposed(**c, signatures=sig)

    @event("ExitProposed")
    def _exit_proposed(self, year: int, effective_date: dt.date, income_per_capita_fen: int,
                       income_line_fen: int, checks: dict, signatures: list[dict]) -> None:
        self.status = S.EXIT_PROPOSED
        self.exit_year = year
        self.income_per_capita_fen = income_per_capita_fen

    def appraise_exit(self, *, effective_date: dt.date, votes_for: int, votes_against: int,
                      votes_total: int, authorise: Authoriser) -> None:
        c = {"effective_date": effective_date, **_votes(votes_for, votes_against, votes_total)}
        if (sig := self._begin("ExitAppraised", c, {S.EXIT_PROPOSED}, authorise)) is not None:
            self._exit_appraised(**c, signatures=sig)

    @event("ExitAppraised")
    def _exit_appraised(self, effective_date: dt.date, votes_for: int, votes_against: int,
                        votes_total: int, signatures: list[dict]) -> None:
        self.status = S.EXIT_APPRAISED if votes_for * 2 > votes_total else S.REGISTERED

    def confirm_exit_by_household(self, *, effective_date: dt.date, confirmed_by: str,
                                  method: str, authorise: Authoriser) -> None:
        """农户签字确认: the household head confirms; a village cadre witnesses it (见证)."""
        if confirmed_by not in {m["name"] for m in self.members if m["relation"] == "head"}:
            raise InvalidInput("must be the household head's name", field="confirmed_by")
        if method not in ("signature", "fingerprint"):
            raise InvalidInput("must be 'signature' (签字) or 'fingerprint' (按手印)", field="method")
        c = {"effective_date": effective_date, "confirmed_by": confirmed_by, "method": method}
        if (sig := self._begin("ExitConfirmedByHousehold", c, {S.EXIT_APPRAISED},
                               authorise)) is not None:
            self._exit_confirmed(**c, signatures=sig)

    @event("ExitConfirmedByHousehold")
    def _exit_confirmed(self, effective_date: dt.date, confirmed_by: str, method: str,
                        signatures: list[dict]) -> None:
        self.status = S.EXIT_CONFIRMED

    def verify_exit_by_township(self, *, effective_date: dt.date, opinion: str,
                                authorise: Authoriser) -> None:
        c = {"effective_date": effective_date, "opinion": _text(opinion, "opinion")}
        if (sig := self._begin("ExitVerifiedByTownship", c, {S.EXIT_NOTICE}, authorise,
                               after_notice=True)) is not None:
            self._exit_verified(**c, signatures=sig)

    @event("ExitVerifiedByTownship")
    def _exit_verified(self, effective_date: dt.date, opinion: str, signatures: list[dict]) -> None:
        self.status = S.EXIT_VERIFIED

    def approve_exit_by_county(self, *, effective_date: dt.date, announcement_no: str,
                               authorise: Authoriser) -> None:
        c = {"effective_date": effective_date,
             "announcement_no": _text(announcement_no, "announcement_no")}
        if (sig := self._begin("ExitApprovedByCounty", c, {S.EXIT_VERIFIED}, authorise)) is not None:
            self._exit_approved(**c, signatures=sig)

    @event("ExitApprovedByCounty")
    def _exit_approved(self, effective_date: dt.date, announcement_no: str,
                       signatures: list[dict]) -> None:
        self.status = S.EXITED
        self.history.append((effective_date, S.EXITED))

    # removal 清退 and relapse 返贫 ------------------------------------------------
    def remove(self, *, effective_date: dt.date, reason: str, authorise: Authoriser) -> None:
        """应退尽退: a wrongly registered household leaves the register, with the reason."""
        c = {"effective_date": effective_date, "reason": _text(reason, "reason")}
        if (sig := self._begin("RemovedFromRegister", c, ON_REGISTER | {S.EXITED},
                               authorise)) is not None:
            self._removed(**c, signatures=sig)

    @event("RemovedFromRegister")
    def _removed(self, effective_date: dt.date, reason: str, signatures: list[dict]) -> None:
        self.status = S.REMOVED
        self.history.append((effective_date, S.REMOVED))

    def relapse(self, *, effective_date: dt.date, cause: str, income_per_capita_fen: int,
                authorise: Authoriser) -> None:
        """返贫: an exited household falls back and is registered again."""
        c = {"effective_date": effective_date, "cause": self._cause(cause, "cause"),
             "income_per_capita_fen": _nonneg_int(income_per_capita_fen, "income_per_capita_fen")}
        if (sig := self._begin("Relapsed", c, {S.EXITED}, authorise)) is not None:
            self._relapsed(**c, signatures=sig)

    @event("Relapsed")
    def _relapsed(self, effective_date: dt.date, cause: str, income_per_capita_fen: int,
                  signatures: list[dict]) -> None:
        self.status = S.REGISTERED
        self.relapses += 1
        self.income_per_capita_fen = income_per_capita_fen
        self.history.append((effective_date, S.REGISTERED))


def _votes(votes_for: object, votes_against: object, votes_total: object) -> dict[str, int]:
    """Vote counts of a democratic appraisal (民主评议)."""
    v = {"votes_for": _nonneg_int(votes_for, "votes_for"),
         "votes_against": _nonneg_int(votes_against, "votes_against"),
         "votes_total": _nonneg_int(votes_total, "votes_total")}
    if v["votes_total"] == 0 or v["votes_for"] + v["votes_against"] > v["votes_total"]:
        raise InvalidInput("votes_for + votes_against must not exceed votes_total (> 0)",
                           field="votes_total")
    return v


def _year(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2000 <= value <= 2100:
        raise InvalidInput("must be a year between 2000 and 2100", field="year")
    return value
