"""The household register (建档立卡台账) and the region tree it hangs on.

``register_households``: one row per household that applied — status, causes (致贫原因),
members count, income, assistance cadre (帮扶责任人), and the dates it was registered,
exited (脱贫), removed (清退) or relapsed (返贫); and the keyed hashes of its head's ID number
and its bank account (``HASHES``), which only the 发放清册 reads (``exchange.households``).
``register_history``: every step of its procedures with the status after it.
``register_regions``: the region tree with each region's registered population where known
(``Region.Created``), the denominator of the poverty incidence in the village view
(``projections.queries.village_view``).

A household imported from the national register's roster (花名册: ``Household.Applied``
with a ``batch``, ``domain.roster``) is on the register from its effective date (首次识别时间),
and exited from the roster's ``exited_on`` if it gives one: its row says so from the start
(``registered_on``, ``exited_on``, ``exit_year``, ``imported_from``).

The status after each step follows ``domain.household`` exactly (the tests compare it
with the aggregate's own status for every household of random histories).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Column, Date, Index, Integer, String, Table, Text

from domain.household import ON_REGISTER, Status
from projections.events import Event
from projections.projection import Projection, Row, Rows, handles
from projections.tracking import metadata

S = Status
LEVELS = ("province", "city", "county", "township", "village")

regions = Table(
    "register_regions", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_code", String(32)),
    *[Column(level, String(32)) for level in LEVELS[:-1]],
    Column("population", Integer),  # registered (户籍) population, when known
)

households = Table(
    "register_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    *[Column(level, String(32)) for level in LEVELS],
    Column("head_name", Text, nullable=False),
    Column("members_count", Integer, nullable=False),
    Column("main_cause", String(32), nullable=False),
    Column("secondary_causes", JSON, nullable=False),
    Column("income_per_capita_fen", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("on_register", Integer, nullable=False),  # 1 while 建档立卡 (registered or exiting)
    Column("applied_on", Date, nullable=False),
    Column("registered_on", Date),
    Column("exit_year", Integer),
    Column("exited_on", Date),
    Column("removed_on", Date),
    Column("removal_reason", Text),
    Column("relapse_count", Integer, nullable=False),
    Column("relapsed_on", Date),
    Column("helper_official_id", String(36)),
    Column("helper_since", Date),
    Column("last_step", String(48), nullable=False),
    Column("version", Integer, nullable=False),
    Column("imported_from", String(36)),  # the roster import (花名册) it came from
    # the keyed hashes (domain.identity) of the head's ID number and of the bank account,
    # as the application gave them (never changed after it): the 发放清册 shows them masked
    Column("head_id_hash", Text),
    Column("bank_account_hash", Text),
)
HASHES = ("head_id_hash", "bank_account_hash")  # for the 发放清册; not in the register's views
Index("register_households_village", households.c.village, households.c.status)
Index("register_households_code", households.c.code, unique=True)

history = Table(
    "register_history", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("step", String(48), nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("status", String(24), nullable=False),  # after the step
    Column("details", JSON, nullable=False),  # the step's own fields (votes, reason, …)
    Column("log_position", BigInteger, nullable=False),
)

helpers = Table(  # names of the officials who may be assigned as 帮扶责任人
    "register_officials", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", Text, nullable=False),
)

NOT_DETAILS = {"effective_date", "signatures", "region_path", "timestamp", "originator_topic",
               "members", "household_code", "village_code", "head_name", "bank_account_hash"}
NOTICE_STATUS = {"first": S.FIRST_NOTICE, "second": S.SECOND_NOTICE, "exit": S.EXIT_NOTICE}
SIMPLE = {  # step → status after it
    "Household.VerifiedByVillage": S.VERIFIED,
    "Household.ReviewedByTownship": S.TOWNSHIP_REVIEWED,
    "Household.ApprovedByCounty": S.REGISTERED,
    "Household.ExitConfirmedByHousehold": S.EXIT_CONFIRMED,
    "Household.ExitVerifiedByTownship": S.EXIT_VERIFIED,
    "Household.ExitApprovedByCounty": S.EXITED,
    "Household.RemovedFromRegister": S.REMOVED,
    "Household.Relapsed": S.REGISTERED,
    "Household.ExitProposed": S.EXIT_PROPOSED,
}


class Register(Projection):
    name = "register"
    version = 3  # 2: households imported from a roster; 3: head's ID and bank hashes
    tables = (regions, households, history, helpers)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(households, {(e.originator_id,) for e in events if e.step.startswith(
            "Household.") and e.step != "Household.Applied"})

    @handles("Region.Created")
    def region_created(self, e: Event, rows: Rows) -> None:
        path = e["path"]
        rows.insert(regions, {"code": e["code"], "name": e["name"], "level": e["level"],
                              "parent_code": e["parent_code"],
                              **{level: path.get(level) for level in LEVELS[:-1]},
                              "population": e.get("population")})

    @handles("Official.Registered")
    def official_registered(self, e: Event, rows: Rows) -> None:
        rows.insert(helpers, {"official_id": e.originator_id, "code": e["code"],
                              "name": e["name"]})

    @handles("Household.Applied")
    def applied(self, e: Event, rows: Rows) -> None:
        path = e["region_path"]
        h = rows.insert(households, {
            "household_id": e.originator_id, "code": e["household_code"],
            **{level: path.get(level) for level in LEVELS},
            "head_name": e["head_name"], "members_count": len(e["members"]),
            "main_cause": e["main_cause"], "secondary_causes": e["secondary_causes"],
            "income_per_capita_fen": e["income_per_capita_fen"], "status": S.APPLIED.value,
            "on_register": 0, "applied_on": e.day, "registered_on": None, "exit_year": None,
            "exited_on": None, "removed_on": None, "removal_reason": None, "relapse_count": 0,
            "relapsed_on": None, "helper_official_id": None, "helper_since": None,
            "last_step": e.step, "version": e.version, "imported_from": None,
            "head_id_hash": next((m.get("id_number_hash") for m in e["members"]
                                  if m.get("relation") == "head"), None),
            "bank_account_hash": e.get("bank_account_hash")})
        details = {"main_cause": e["main_cause"], "secondary_causes": e["secondary_causes"],
                   "income_per_capita_fen": e["income_per_capita_fen"],
                   "members_count": len(e["members"])}
        imported = e.get("batch")
        if imported:
            self._imported(e, h, imported)
            details["imported"] = {k: imported.get(k) for k in
                                   ("import_id", "row", "exited_on", "source_rows")}
        self._history(e, rows, h, details)

    @staticmethod
    def _imported(e: Event, h: Row, imported: dict) -> None:
        """On the register from the roster's date, exited from its ``exited_on`` (as
        ``Household.__init__`` makes an imported household)."""
        h.update(status=S.REGISTERED.value, registered_on=e.day,
                 imported_from=imported.get("import_id"))
        if imported.get("exited_on"):
            exited = dt.date.fromisoformat(str(imported["exited_on"]))
            h.update(status=S.EXITED.value, exited_on=exited, exit_year=exited.year)
        h["on_register"] = int(S(h["status"]) in ON_REGISTER)

    @handles(*SIMPLE, "Household.AppraisedByVillage", "Household.ExitAppraised",
             "Household.NoticePosted", "Household.ObjectionRaised", "Household.ObjectionResolved",
             "Household.HelperAssigned", "Household.AnnualReviewRecorded")
    def step(self, e: Event, rows: Rows) -> None:
        h = rows.need(households, e.originator_id)
        status = S(h["status"])
        if e.step in SIMPLE:
            status = SIMPLE[e.step]
        elif e.step == "Household.AppraisedByVillage":
            status = S.APPRAISED if self._carried(e) else S.REJECTED
        elif e.step == "Household.ExitAppraised":
            status = S.EXIT_APPRAISED if self._carried(e) else S.REGISTERED
        elif e.step == "Household.NoticePosted":
            status = NOTICE_STATUS[e["round"]]
        elif e.step == "Household.ObjectionResolved" and e["upheld"]:
            status = S.REGISTERED if status is S.EXIT_NOTICE else S.REJECTED
        self._facts(e, h)
        h.update(status=status.value, on_register=int(status in ON_REGISTER), last_step=e.step,
                 version=e.version)
        rows.changed(households, h)
        self._history(e, rows, h, {k: v for k, v in e.data.items() if k not in NOT_DETAILS})

    @staticmethod
    def _carried(e: Event) -> bool:
        """A democratic appraisal (民主评议) carries with a majority of the representatives."""
        return e["votes_for"] * 2 > e["votes_total"]

    @staticmethod
    def _facts(e: Event, h: Row) -> None:
        step = e.step
        if step == "Household.ApprovedByCounty":
            h["registered_on"] = e.day
        elif step == "Household.ExitProposed":
            h["exit_year"] = e["year"]
            h["income_per_capita_fen"] = e["income_per_capita_fen"]
        elif step == "Household.ExitApprovedByCounty":
            h["exited_on"] = e.day
        elif step == "Household.RemovedFromRegister":
            h["removed_on"], h["removal_reason"] = e.day, e["reason"]
        elif step == "Household.Relapsed":
            h["relapse_count"] += 1
            h["relapsed_on"] = e.day
            h["income_per_capita_fen"] = e["income_per_capita_fen"]
        elif step == "Household.HelperAssigned":
            h["helper_official_id"], h["helper_since"] = e["official_id"], e.day
        elif step == "Household.AnnualReviewRecorded":
            h["income_per_capita_fen"] = e["income_per_capita_fen"]
            h["members_count"] = e["members_count"]

    @staticmethod
    def _history(e: Event, rows: Rows, h: Row, details: dict) -> None:
        rows.insert(history, {"household_id": e.originator_id, "version": e.version,
                              "step": e.step, "effective_date": e.day, "status": h["status"],
                              "details": details, "log_position": e.position})
