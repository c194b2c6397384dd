"""花名册导入 (roster import): the national register's export → new households.

The 花名册 has one row per person; its rows are grouped by 户编号 into households, in the
order the file first names them.  Per household:

- the head is the member whose 与户主关系 is 户主 (exactly one; relation codes as
  ``exchange.formats.RELATIONS`` gives them: head, spouse, child …, those
  ``domain.household`` keeps); the household's own columns (致贫原因, 人均纯收入,
  首次识别时间, 脱贫年度) are read from the head's row;
- 村 is a village of the county, by its code (村代码, or a code typed in 村) or by its name
  (with 乡(镇) when two villages share a name);
- 首次识别时间 (a year) → on the register from 1 January of that year (2013 at the
  earliest: the register began then); 脱贫年度 → exited on 31 December of that year, or
  on the import's as-of date when that comes first;
- 致贫原因 → the cause code (``domain.household.PovertyCause``), 人均纯收入 → fen.

A household already on record is not imported again: identical (village, head, members,
cause, income) → listed as 已存在; different → listed as 差异 with the fields that differ.
The roster import only adds new households; a difference is changed through the
household's own steps (年度评议, 清退 …), never by a file.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from domain import batch
from domain.application import Zhuisu
from domain.household import Household
from domain.region import Region, RegionLevel
from domain.roster import Roster
from exchange.formats import Parsed, RowError
from exchange.imports_common import DryRun, Village, villages_of
from exchange.labels import CAUSE_ZH
from projections.directory import Directory

REGISTER_BEGAN = 2013


def _village_of(head: Mapping[str, Any], villages: list[Village],
                columns: Mapping[str, str]) -> tuple[str | None, RowError | None]:
    by_code = {v.code: v for v in villages}
    code = head.get("village_code")
    named = str(head.get("village") or "").strip()
    row = head["_row"]
    if code:
        if code in by_code:
            return code, None
        return None, RowError(row, columns.get("village_code"),
                              f"村代码{code}不是本县的行政村", code)
    if named in by_code:
        return named, None
    found = [v for v in villages if v.name == named]
    if len(found) > 1:
        township = str(head.get("township") or "").strip()
        found = [v for v in found if township in (v.township_name, v.township_code)]
    if len(found) == 1:
        return found[0].code, None
    if not found:
        return None, RowError(row, columns.get("village"),
                              f"“{named}”不是本县的行政村（请核对村名或填写村代码）", named)
    return None, RowError(row, columns.get("village"),
                          f"本县有多个“{named}”，请填写村代码", named)


def _household_row(members: list[dict[str, Any]], head: dict[str, Any], village: str,
                   as_of: dt.date, columns: Mapping[str, str]
                   ) -> tuple[dict[str, Any] | None, list[RowError]]:
    errors = []
    row = head["_row"]
    year = head.get("identified_year")
    if year is None or year < REGISTER_BEGAN or year > as_of.year:
        errors.append(RowError(row, columns.get("identified_year"),
                               f"首次识别时间须在{REGISTER_BEGAN}年至{as_of.year}年之间",
                               None if year is None else str(year)))
        return None, errors
    effective = dt.date(year, 1, 1)
    exited = None
    if head.get("exit_year") is not None:
        exit_year = head["exit_year"]
        if exit_year < year or exit_year > as_of.year:
            errors.append(RowError(row, columns.get("exit_year"),
                                   f"脱贫年度须在首次识别时间（{year}年）至{as_of.year}年之间",
                                   str(exit_year)))
            return None, errors
        exited = min(dt.date(exit_year, 12, 31), as_of)
        if exited < effective:
            exited = effective
    return {
        "household_code": head["household_code"], "village_code": village,
        "effective_date": effective.isoformat(), "head_name": head["name"],
        "members": [{"name": m["name"], "id_number_hash": m["id_hash"],
                     "relation": m["relation"]} for m in members],
        "main_cause": head["main_cause"], "secondary_causes": [],
        "income_per_capita_fen": head["income_per_capita_fen"] or 0,
        "bank_account_hash": None,
        "exited_on": exited.isoformat() if exited else None,
        "source_rows": [m["_row"] for m in members],
    }, errors


def _differences(household: Household, row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The fields of the file's household that differ from the one on record (names only
    for members: their ID hashes are compared, never shown)."""
    out = []

    def differ(name: str, zh: str, recorded: Any, in_file: Any) -> None:
        if recorded != in_file:
            out.append({"field": name, "field_zh": zh, "recorded": str(recorded),
                        "in_file": str(in_file)})

    differ("village_code", "村", household.village_code, row["village_code"])
    differ("head_name", "户主姓名", household.head_name, row["head_name"])
    recorded = sorted((m["id_number_hash"], m["relation"], m["name"]) for m in household.members)
    in_file = sorted((m["id_number_hash"], m["relation"], m["name"]) for m in row["members"])
    if recorded != in_file:
        out.append({"field": "members", "field_zh": "家庭成员",
                    "recorded": "、".join(n for _, _, n in recorded),
                    "in_file": "、".join(n for _, _, n in in_file)})
    differ("main_cause", "致贫原因", CAUSE_ZH.get(household.main_cause, household.main_cause),
           CAUSE_ZH.get(row["main_cause"], row["main_cause"]))
    differ("income_per_capita_fen", "人均纯收入（分）", household.income_per_capita_fen,
           row["income_per_capita_fen"])
    return out


def roster_dry_run(run: DryRun, parsed: Parsed, app: Zhuisu, directory: Directory, *,
                   county_code: str, as_of: dt.date) -> list[RowError]:
    """Group, match and check a parsed 花名册; fill ``run`` (counts, differences, the
    manifest and rows); answer the row errors beyond the file's own."""
    county = app.load(Region, Region.create_id(county_code), "county")
    if county.level is not RegionLevel.COUNTY:
        from domain.errors import InvalidInput

        raise InvalidInput(f"{county_code} is a {county.level.value}, not a county",
                           field="county")
    run.region_path = dict(county.path)
    villages = villages_of(app, directory, county_code)
    columns = parsed.columns
    groups: dict[str, list[dict[str, Any]]] = {}
    for person in parsed.rows:
        groups.setdefault(person["household_code"], []).append(person)
    errors: list[RowError] = []
    new_rows: list[dict[str, Any]] = []
    existing = differing = 0
    for code, members in groups.items():
        heads = [m for m in members if m["relation"] == "head"]
        first = members[0]["_row"]
        if len(heads) != 1:
            rule = (f"户编号{code}没有户主（与户主关系为“户主”的成员）" if not heads else
                    f"户编号{code}有{len(heads)}个户主（第{'、'.join(str(h['_row']) for h in heads)}行）")
            errors.append(RowError(first if not heads else heads[1]["_row"],
                                   columns.get("relation"), rule, None))
            continue
        head = heads[0]
        village, problem = _village_of(head, villages, columns)
        if problem is not None:
            errors.append(problem)
            continue
        row, problems = _household_row(members, head, village or "", as_of, columns)
        errors.extend(problems)
        if row is None:
            continue
        hid = Household.create_id(code)
        if app.exists(hid):
            diff = _differences(app.load(Household, hid), row)
            shown = {"household_code": code, "head_name": row["head_name"],
                     "rows": row["source_rows"]}
            if diff:
                differing += 1
                run.differences.append({**shown, "fields": diff})
            else:
                existing += 1
                run.existing.append(shown)
            continue
        new_rows.append(row)
    run.counts.update({"households": len(groups), "households_new": len(new_rows),
                       "households_existing": existing, "households_differing": differing,
                       "persons": len(parsed.rows)})
    if differing:
        run.notes.append(f"{differing}户与系统中已有记录不同（差异）：花名册导入只新增农户，"
                         "不修改已有农户；差异请通过该户的年度评议、清退等步骤处理。")
    if existing:
        run.notes.append(f"{existing}户已存在且与文件一致，本次跳过。")
    if new_rows and not errors and not parsed.errors:
        import_id = str(uuid.uuid4())
        checked = [batch.roster_row(r, i) for i, r in enumerate(new_rows)]
        run.content = {
            "import_id": import_id, "county_code": county_code,
            "effective_date": as_of.isoformat(), "row_count": len(new_rows),
            "rows_root": batch.rows_root(batch.ROSTER_ROW, import_id, checked),
            "source_file": run.file["filename"][:100], "source_sha256": run.file["sha256"]}
        run.rows = new_rows
        run.subject = str(Roster.create_id(import_id))
    elif not new_rows and not errors and not parsed.errors:
        run.notes.append("文件中没有新增农户，无需导入。")
    return errors
