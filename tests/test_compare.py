"""大数据比对: registers imported as evidence snapshots, and the comparison models' matches.

Every scenario runs on both stores through the public paths (a CSV file imported with
``exchange.registers.import_register``; signed commands for households and payments); the
matches are read back after catching up in small batches, and the scenarios end by
rebuilding the comparison projection from zero, which must give the same tables.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import pytest
from factories import (
    OTHER_VILLAGE,
    TOWNSHIP,
    a_funded_account,
    a_household_applied,
    a_registered_household,
    application,
    household_payment,
    identification_steps,
    person_number,
    run,
)

from domain.errors import InvalidInput
from domain.identity import check_digit
from domain.fund_account import FundAccount
from domain.household import Household
from domain.registers import id_number_18, rows_root
from exchange.registers import import_register
from inspection.rules.compare import MODEL_IDS, CompareSettings
from projections import runner
from projections.compare import Comparison, list_matches, list_snapshots, match_counts
from projections.compare.evidence import leaf_row, register_rows, rows_of, verify_snapshot
from projections.tracking import dump
from store.engines import engine_for, writer

D = dt.date
T = str(FundAccount.create_id(TOWNSHIP, "central"))
WHO = "县纪委 王检查 (inspector, token t1)"

pytestmark = pytest.mark.usefixtures("close_read_models")


def person(code, who="head"):
    """A valid ID number (a real birth date: the register formats check it)."""
    n = person_number(f"{code}/{who}")
    born = (D(1950, 1, 1) + dt.timedelta(days=n % 20000)).strftime("%Y%m%d")
    first17 = f"522625{born}{n % 1000:03d}"
    return first17 + check_digit(first17)


def members(world, code):
    return [{"name": f"{code}户主", "relation": "head",
             "id_number_hash": world.app.hash_id(person(code))},
            {"name": f"{code}配偶", "relation": "spouse",
             "id_number_hash": world.app.hash_id(person(code, "spouse"))}]


def registered(world, code, **kw):
    return a_registered_household(world, code, members=members(world, code), **kw)


def applied(world, code, **kw):
    return a_household_applied(world, code, members=kw.pop("members", None)
                               or members(world, code), **kw)


def csv(header, *rows):
    return ("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n").encode()


def imported(app, kind, data, *, department="县民政局", as_of=D(2025, 6, 30), name="r.csv"):
    return import_register(app, department=department, kind=kind, as_of=as_of, data=data,
                           filename=name, imported_by=WHO, confirm=True)


def matches(app, model=None, **kw):
    runner.catch_up(app, names=["compare"], batch=7)
    return list_matches(engine_for(app.database_url), model_id=model, limit=1000, **kw)


def pay(world, household, day, amount=10_000):
    content = household_payment(household, amount, day=day, purpose="hh_industry")
    run(world, "FundAccount.Disbursed", T, content)
    return content["movement_id"]


def assert_rebuild_gives_the_same_matches(app):
    runner.catch_up(app, names=["compare"], batch=7)
    engine = engine_for(app.database_url)
    with engine.connect() as conn:
        incremental = dump(conn, Comparison.tables)
    runner.rebuild(app, names=["compare"])
    with engine.connect() as conn:
        assert dump(conn, Comparison.tables) == incremental
    assert incremental["cmp_matches"], "the scenario made matches"


# pure parts ------------------------------------------------------------------------------
def test_a_15_digit_id_number_becomes_18_with_its_check_digit():
    assert id_number_18("110105491231002") == "11010519491231002X"
    assert id_number_18("11010519491231002x") == "11010519491231002X"


def test_thresholds_default_as_documented_and_come_from_the_environment():
    assert CompareSettings.from_env({}) == CompareSettings(vehicle_price_fen=5_000_000,
                                                           housing_area_m2=60)
    assert CompareSettings.from_env({"ZHUISU_COMPARE_HOUSING_AREA_M2": "90"}).housing_area_m2 == 90
    with pytest.raises(InvalidInput):
        CompareSettings.from_env({"ZHUISU_COMPARE_VEHICLE_PRICE_FEN": "lots"})


# slice 1: registers as evidence ---------------------------------------------------------
def test_a_register_is_one_event_and_its_rows_are_evidence_checked_against_it(app, world):
    first15 = "522625" + "491231" + "002"  # a first-generation number of someone else
    data = csv(["序号", "姓名", "身份证号码", "死亡日期"],
               ["1", "甲", person("H1"), "2025-02-28"],
               ["2", "乙", first15, "2025/3/1"],
               ["3", "丙", "123", "2025-03-01"])
    dry = import_register(app, department="县公安局", kind="death", as_of=D(2025, 6, 30),
                          data=data, filename="死亡.csv", imported_by=WHO)
    assert (dry["rows_read"], dry["rows_kept"], dry["rows_refused"]) == (3, 2, 1)
    assert dry["recorded"] is False and app.recorder.max_notification_id() > 0
    before = app.recorder.max_notification_id()
    assert [e["row"] for e in dry["errors"]] == [4]
    done = imported(app, "death", data, department="县公安局", name="死亡.csv")
    assert done["recorded"] and app.recorder.max_notification_id() == before + 1
    event = app.stored_events(UUID(done["snapshot_id"]))[0]
    assert (event.department, event.kind, event.row_count, event.rows_read) == \
        ("县公安局", "death", 2, 3)
    assert event.file_sha256 == done["file_sha256"] and event.imported_by == WHO
    engine = engine_for(app.database_url)
    with engine.connect() as conn:
        kept = list(rows_of(conn, done["snapshot_id"]))
        text = repr(conn.execute(register_rows.select()).all())
    assert [r["row_no"] for r in kept] == [2, 3]
    assert kept[1]["id_hash"] == app.hash_id(id_number_18(first15))
    assert person("H1") not in text and first15 not in text  # never in clear
    assert event.rows_root == rows_root(leaf_row(r["row_no"], r["id_hash"], r["fields"])
                                        for r in kept)
    assert verify_snapshot(engine, done["snapshot_id"], event.rows_root)["ok"]
    # the same file again records nothing
    assert imported(app, "death", data, department="县公安局", name="死亡.csv")["recorded"] is False
    assert app.recorder.max_notification_id() == before + 1
    # a row changed in the table is found against the event
    with writer(engine).begin() as conn:
        conn.execute(register_rows.update().where(register_rows.c.row_no == 2)
                     .values(fields={"date_of_death": "2025-12-31"}))
    assert not verify_snapshot(engine, done["snapshot_id"], event.rows_root)["ok"]


# slice 2: the models ---------------------------------------------------------------------
def test_payment_one_day_after_death_is_found_whichever_comes_first(app, world):
    a_funded_account(world)
    h1 = registered(world, "H1")
    h2 = registered(world, "H2")
    same_day = pay(world, h1, D(2025, 3, 1))
    imported(app, "death", csv(["姓名", "证件号码", "死亡日期"],
                                ["甲", person("H1", "spouse"), "2025-02-28"],
                                ["乙", person("H2"), "2025-03-01"]))
    later = pay(world, h2, D(2025, 3, 2))
    on_death_day = pay(world, h2, D(2025, 3, 1))
    found = matches(app, "COMPARE_PAID_AFTER_DEATH")
    by_payment = {m["detail"]["movement_id"]: m for m in found}
    assert set(by_payment) == {same_day, later}, "a day after death: found; the day itself: not"
    assert on_death_day not in by_payment
    m = by_payment[same_day]
    assert m["severity"] == "high" and m["household_id"] == str(h1)
    assert {"kind": "payment", "ref": same_day, "account_id": T} in m["evidence"]
    assert any(e["kind"] == "register" and e["row_no"] == 2 for e in m["evidence"])
    assert set(m["signers"]) == {s["official_id"] for s in last_signatures(app, same_day)}
    assert "死亡" in m["explanation_zh"] and "died" in m["explanation_en"]
    assert_rebuild_gives_the_same_matches(app)


def last_signatures(app, movement_id):
    for e in app.stored_events(FundAccount.create_id(TOWNSHIP, "central")):
        if getattr(e, "movement_id", None) == movement_id:
            return e.signatures
    raise AssertionError(movement_id)


def test_payroll_member_in_a_registered_household_with_its_payments_and_signers(app, world):
    a_funded_account(world)
    h1 = registered(world, "H1")
    paid = pay(world, h1, D(2025, 3, 1))
    imported(app, "payroll", csv(["姓名", "证件号码", "工作单位", "职务"],
                                  ["甲", person("H1", "spouse"), "县教育局", "教师"],
                                  ["乙", person("H2"), "县医院", "医生"]), department="县财政局")
    h2 = applied(world, "H2")
    assert not [m for m in matches(app, "COMPARE_PAYROLL_MEMBER") if m["household_id"] == str(h2)]
    for step, content in identification_steps():
        run(world, step, h2, content)  # registered after the register was imported
    later = pay(world, h1, D(2025, 4, 1))
    found = {m["household_id"]: m for m in matches(app, "COMPARE_PAYROLL_MEMBER")}
    assert set(found) == {str(h1), str(h2)}
    m1 = found[str(h1)]
    refs = [e["ref"] for e in m1["evidence"] if e["kind"] == "payment"]
    assert refs == [paid, later], "its payments are evidence, later ones too"
    assert m1["detail"]["payments"] == 2 and m1["detail"]["fields"]["payroll_unit"] == "县教育局"
    county_approver = [s["official_id"] for s in
                       app.stored_events(h1)[-1].signatures if s["role"] == "approver"]
    assert set(county_approver) <= set(m1["signers"])
    assert set(s["official_id"] for s in last_signatures(app, later)) <= set(m1["signers"])
    assert "财政供养" in m1["explanation_zh"]
    assert_rebuild_gives_the_same_matches(app)


def test_a_newer_snapshot_supersedes_for_new_matches_and_old_matches_keep_theirs(app, world):
    h1 = registered(world, "H1")
    h2 = registered(world, "H2")
    header = ["姓名", "证件号码", "工作单位"]
    old = imported(app, "payroll", csv(header, ["甲", person("H1"), "县委"]),
                   department="县财政局", as_of=D(2025, 3, 31))
    new = imported(app, "payroll", csv(header, ["甲", person("H1"), "县委"],
                                       ["乙", person("H2"), "县政府"]),
                   department="县财政局", as_of=D(2025, 6, 30))
    older = imported(app, "payroll", csv(header, ["丙", person("H3"), "县委"]),
                     department="县财政局", as_of=D(2025, 1, 31))
    h3 = registered(world, "H3")
    found = {m["household_id"]: m["snapshot_id"] for m in matches(app, "COMPARE_PAYROLL_MEMBER")}
    assert found == {str(h1): old["snapshot_id"], str(h2): new["snapshot_id"]}
    assert str(h3) not in found, "an older snapshot imported later is never current"
    snaps = {s["snapshot_id"]: s for s in list_snapshots(engine_for(app.database_url))}
    assert snaps[old["snapshot_id"]]["superseded_by"] == new["snapshot_id"]
    assert snaps[new["snapshot_id"]]["current"] and not snaps[older["snapshot_id"]]["current"]
    assert_rebuild_gives_the_same_matches(app)


def test_relatives_assets_business_duplicates_and_status_contradictions(app, world):
    h1 = registered(world, "H1")
    h2 = registered(world, "H2")
    h3 = registered(world, "H3")
    cadre = person("CADRE")
    imported(app, "cadre_relatives", csv(
        ["亲属姓名", "亲属证件号码", "干部证件号码", "干部职务", "关系"],
        ["甲", person("H1"), cadre, "村支书", "兄弟姐妹"],
        ["乙", person("H2"), cadre, "村支书", "表兄弟"]), department="县委组织部")
    imported(app, "vehicle", csv(["姓名", "证件号码", "号牌号码", "车辆类型", "购置价格"],
                                 ["甲", person("H1"), "贵H12345", "小型轿车", "128000.00"],
                                 ["乙", person("H2"), "贵H54321", "三轮汽车", "8000"]),
             department="县公安局交警大队")
    imported(app, "property", csv(["姓名", "证件号码", "坐落", "建筑面积", "房屋性质"],
                                  ["甲", person("H2", "spouse"), "县城某小区", "89.5", "商品房"],
                                  ["乙", person("H3"), "某村", "120", "自建房"]),
             department="县自然资源局")
    imported(app, "business", csv(["姓名", "证件号码", "统一社会信用代码", "身份"],
                                  ["甲", person("H3", "spouse"), "91522625MA6XXXXX1X", "法定代表人"]),
             department="县市场监管局")
    kinds = {m["model_id"]: m["household_id"] for m in matches(app)}
    assert kinds["COMPARE_CADRE_RELATIVE"] == str(h1), "表兄弟 is not a close relative"
    assert kinds["COMPARE_VEHICLE"] == str(h1), "below the price threshold: no match"
    assert kinds["COMPARE_COMMERCIAL_HOUSING"] == str(h2), "self-built housing: no match"
    assert kinds["COMPARE_BUSINESS_OWNER"] == str(h3)
    assert len([m for m in matches(app) if m["model_id"] == "COMPARE_CADRE_RELATIVE"]) == 1
    # the same person in two households (another village)
    twin = [{"name": "H1户主", "relation": "head",
             "id_number_hash": app.hash_id(person("H1"))}]
    h9 = applied(world, "H9", village=OTHER_VILLAGE, members=twin)
    dup = matches(app, "COMPARE_DUPLICATE_PERSON")
    assert [(m["household_id"], m["detail"]["other_household_id"], m["detail"]["same_village"])
            for m in dup] == [(str(h9), str(h1), False)]
    # 低保 cancelled before the household applied; 因残 without a registered disabled member
    imported(app, "dibao", csv(["姓名", "证件号码", "保障状态", "停保日期"],
                               ["甲", person("H2"), "取消", "2024-12-01"],
                               ["乙", person("H3"), "在保", ""]), department="县民政局")
    crippled = [{"name": "H4户主", "relation": "head",
                 "id_number_hash": app.hash_id(person("H4"))}]
    h4 = Household.create_id("H4")
    content = application(world, "H4", members=crippled)
    content["main_cause"] = "disability"
    content["secondary_causes"] = []
    run(world, "Household.Applied", h4, content)
    for step, c in identification_steps():
        run(world, step, h4, c)
    imported(app, "disability", csv(["姓名", "证件号码", "残疾等级"],
                                    ["甲", person("H2"), "二级"]), department="县残联")
    kinds = {m["model_id"]: m["household_id"] for m in matches(app)}
    assert kinds["COMPARE_DIBAO_CONTRADICTS"] == str(h2)
    assert kinds["COMPARE_DISABILITY_CONTRADICTS"] == str(h4)
    counts = match_counts(engine_for(app.database_url))
    assert set(counts) == set(MODEL_IDS) and counts["COMPARE_DUPLICATE_PERSON"] == 1
    assert_rebuild_gives_the_same_matches(app)


# slice 4: the command line -----------------------------------------------------------------
@pytest.mark.usefixtures("restore_logging")
def test_the_command_line_imports_lists_verifies_and_shows_matches(app, world, tmp_path,
                                                                    monkeypatch):
    import json

    from typer.testing import CliRunner

    from cli import app as cli

    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    h1 = registered(world, "H1")
    path = tmp_path / "财政供养人员.csv"
    path.write_bytes(csv(["姓名", "证件号码", "工作单位"], ["甲", person("H1"), "县委办"],
                         ["乙", "bad", "县委办"]))
    cmd = CliRunner()
    args = ["register", "import", str(path), "--department", "县财政局", "--kind", "payroll",
            "--as-of", "2025-06-30"]
    dry = cmd.invoke(cli, args)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["recorded"] is False
    done = cmd.invoke(cli, [*args, "--confirm"])
    summary = json.loads(done.stdout)
    assert summary["recorded"] is True and summary["rows_kept"] == 1
    assert person("H1") not in done.output
    listed = json.loads(cmd.invoke(cli, ["register", "list"]).stdout)
    assert [s["snapshot_id"] for s in listed] == [summary["snapshot_id"]]
    ok = cmd.invoke(cli, ["register", "verify", summary["snapshot_id"]])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    found = json.loads(cmd.invoke(cli, ["compare", "matches", "--model",
                                        "COMPARE_PAYROLL_MEMBER"]).stdout)
    assert [m["household_id"] for m in found] == [str(h1)]
    bad = cmd.invoke(cli, [*args[:-1], "not-a-date"])
    assert bad.exit_code != 0
