"""Importing other departments' registers (比对数据导入) as evidence snapshots.

One ``Format`` per register kind (``domain.registers.RegisterKind``), read and checked row
by row by ``exchange.formats.parse`` (ID numbers: 15 digits become 18, the check digit
and birth date are checked, and only the keyed hash is kept — never the number, in no
row, error or summary).  Of each valid row only the fields the comparison models read are
kept (``domain.registers.ROW_FIELDS``); the name is not kept.

``import_register`` reads a file and answers a summary (rows read, kept, refused with
their reasons, the snapshot it would make); with ``confirm`` it writes the kept rows to
``register_rows`` (``projections.compare.evidence``) and then records the snapshot's one
event (``domain.registers.record_snapshot``) with the rows' Merkle root.  The same file
again (same department, kind, as-of date and hash) records nothing new.

Column names accepted (the first of each is the canonical one; "*" marks required):

=================  ==============================================================
every kind         证件号码* (身份证号码, 公民身份号码, 身份证号), 姓名 (read, not kept)
death 死亡/火化     死亡日期* (火化日期, 死亡时间)
payroll 财政供养     工作单位* (供养单位, 单位名称), 职务 (岗位)
cadre_relatives    亲属证件号码* (the relative; also 证件号码), 干部证件号码* (村干部身份证号码),
                   干部职务* (村干部职务), 关系* (与干部关系, 亲属关系), 亲等 (亲属等级; else
                   from the relation: 配偶/父母/子女 1, 兄弟姐妹/祖父母/外祖父母/孙子女 2)
vehicle 车辆        号牌号码* (车牌号码, 车牌号), 车辆类型 (车型), 购置价格 (购车价格, 发票价格; 元)
property 房产       坐落* (房屋坐落, 不动产坐落), 建筑面积* (面积; m²), 房屋性质 (房屋类型, 用途)
business 工商       统一社会信用代码* (信用代码), 身份* (角色, 人员类型: 法定代表人, 股东 …)
dibao 低保          保障状态* (低保状态, 状态: 在保, 停保, 取消 …), 开始日期 (纳入日期), 停保日期
                   (终止日期, 取消日期, 结束日期)
disability 残疾人   残疾等级* (等级)
=================  ==============================================================
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from domain.registers import (
    KIND_TITLES,
    RELATION_DEGREES,
    ROW_FIELDS,
    RegisterKind,
    record_snapshot,
    row_leaf,
    merkle_root,
    snapshot_id,
)
from domain.errors import InvalidInput
from exchange.formats import ColumnSpec, Format, parse
from projections.compare.evidence import leaf_row, write_rows
from store.engines import engine_for
from store.urls import database_url_of

ID = ColumnSpec("id_hash", ("证件号码", "身份证号码", "公民身份号码", "身份证号"), "id_number")
NAME = ColumnSpec("name", ("姓名",), "text", required=False)


def _fmt(kind: str, *columns: ColumnSpec, person: ColumnSpec = ID, keyed: bool = True) -> Format:
    return Format(key=f"register_{kind}", title=KIND_TITLES[kind],
                  columns=(person, NAME, *columns),
                  key_fields=(person.field,) if keyed else ())


FORMATS: dict[str, Format] = {
    "death": _fmt("death", ColumnSpec("date_of_death", ("死亡日期", "火化日期", "死亡时间"),
                                      "date")),
    "payroll": _fmt("payroll",
                    ColumnSpec("payroll_unit", ("工作单位", "供养单位", "单位名称"), "text"),
                    ColumnSpec("position", ("职务", "岗位"), "text", required=False)),
    "cadre_relatives": _fmt(
        "cadre_relatives",
        ColumnSpec("cadre_id_hash", ("干部证件号码", "干部身份证号码", "村干部身份证号码"),
                   "id_number"),
        ColumnSpec("cadre_position", ("干部职务", "村干部职务"), "text"),
        ColumnSpec("relation", ("关系", "与干部关系", "亲属关系"), "text"),
        ColumnSpec("degree", ("亲等", "亲属等级"), "int", required=False),
        person=ColumnSpec("id_hash", ("亲属证件号码", "亲属身份证号码", "证件号码", "身份证号码"),
                          "id_number"), keyed=False),
    "vehicle": _fmt("vehicle",
                    ColumnSpec("plate", ("号牌号码", "车牌号码", "车牌号"), "text"),
                    ColumnSpec("vehicle_type", ("车辆类型", "车型"), "text", required=False),
                    ColumnSpec("price_fen", ("购置价格", "购车价格", "发票价格"), "money_yuan",
                               required=False), keyed=False),
    "property": _fmt("property",
                     ColumnSpec("location", ("坐落", "房屋坐落", "不动产坐落"), "text"),
                     ColumnSpec("area_m2", ("建筑面积", "面积"), "decimal"),
                     ColumnSpec("property_kind", ("房屋性质", "房屋类型", "用途"), "text",
                                required=False), keyed=False),
    "business": _fmt("business",
                     ColumnSpec("credit_code", ("统一社会信用代码", "信用代码"), "text"),
                     ColumnSpec("role", ("身份", "角色", "人员类型"), "text"), keyed=False),
    "dibao": _fmt("dibao",
                  ColumnSpec("dibao_status", ("保障状态", "低保状态", "状态"), "text"),
                  ColumnSpec("start_date", ("开始日期", "纳入日期"), "date", required=False),
                  ColumnSpec("end_date", ("停保日期", "终止日期", "取消日期", "结束日期"), "date",
                             required=False)),
    "disability": _fmt("disability",
                       ColumnSpec("disability_grade", ("残疾等级", "等级"), "text")),
}
assert set(FORMATS) == {k.value for k in RegisterKind}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(round(value, 2))
    return value


def kept_fields(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a parsed row: the model's fields, JSON-plain."""
    fields = {f: _plain(row.get(f)) for f in ROW_FIELDS[kind]}
    if kind == "cadre_relatives" and fields.get("degree") is None:
        fields["degree"] = RELATION_DEGREES.get(str(fields.get("relation") or ""))
    return fields


def read_register(app: Any, *, kind: str, data: bytes, filename: str) -> dict[str, Any]:
    """Parse a register file: the kept rows ``(row_no, id_hash, fields)`` and a summary."""
    if kind not in FORMATS:
        raise InvalidInput(f"must be one of {sorted(FORMATS)}", field="kind")
    parsed = parse(FORMATS[kind], data, filename, pepper=app.id_pepper)
    kept = [(int(r["_row"]), r["id_hash"], kept_fields(kind, r)) for r in parsed.rows]
    return {"kept": kept, "sha256": parsed.table.sha256, "rows_read": parsed.rows_read,
            "errors": [{"row": e.row, "column": e.column, "rule": e.rule, "value": e.value}
                       for e in parsed.errors],
            "ignored_columns": parsed.ignored_columns, "columns": parsed.columns,
            "skipped": len(parsed.skipped)}


def import_register(app: Any, *, department: str, kind: str, as_of: Any, data: bytes,
                    filename: str, imported_by: str, confirm: bool = False,
                    errors_shown: int = 100) -> dict[str, Any]:
    """Read a register file (dry run) or import it (``confirm``): the summary either way."""
    from domain.limits import fact_date

    if not isinstance(department, str) or not department.strip():
        raise InvalidInput("must name the department (提供数据的部门)", field="department")
    day = fact_date(as_of, "as_of", app.clock())
    found = read_register(app, kind=kind, data=data, filename=filename)
    kept = found["kept"]
    root = merkle_root(row_leaf(leaf_row(n, h, f)) for n, h, f in kept)
    sid = str(snapshot_id(department.strip(), kind, day, found["sha256"]))
    summary = {"department": department.strip(), "kind": kind, "title": KIND_TITLES[kind],
               "as_of": day.isoformat(), "filename": filename, "file_sha256": found["sha256"],
               "snapshot_id": sid, "rows_read": found["rows_read"], "rows_kept": len(kept),
               "rows_refused": len(found["errors"]), "rows_root": root,
               "errors": found["errors"][:errors_shown], "columns": found["columns"],
               "ignored_columns": found["ignored_columns"], "skipped_rows": found["skipped"],
               "already_imported": bool(app.exists(snapshot_id(department.strip(), kind, day,
                                                                found["sha256"]))),
               "confirmed": bool(confirm), "recorded": False}
    if not confirm:
        return summary
    if not kept:
        raise InvalidInput("the file has no valid row to keep", field="file")
    if not summary["already_imported"]:
        write_rows(engine_for(database_url_of(app)), sid, kind, kept)
    result = record_snapshot(app, department=department.strip(), kind=kind, as_of=day,
                             file_sha256=found["sha256"], filename=filename,
                             rows_read=found["rows_read"], row_count=len(kept),
                             rows_root=root, imported_by=imported_by)
    summary["recorded"] = result["recorded"]
    return summary
