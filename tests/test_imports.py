"""Issue 14 points 3 and 5: importing the offices' files (花名册, 发放清册, 回盘) end to end,
on both stores: dry run, row errors, nothing stored while a row is refused, confirm → a
draft of the signing queue, three signatures → the households, payments and returns in
the log with their source file's SHA-256 and rows.  (HTTP: ``test_imports_api.py``.)
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import openpyxl
import pytest
from factories import COUNTY, TOWNSHIP, VILLAGE, OTHER_VILLAGE, World
from imports_support import (
    CLEAR_IDS,
    COUNTY_SIGNERS,
    PAY_DAY,
    TOWNSHIP_SIGNERS,
    a_paying_world,
    gbk_csv,
    pay_rows,
    return_rows,
    roster_rows,
    signatures_for,
    utf8_csv,
    xlsx,
)
from typer.testing import CliRunner

from access.drafts import Drafts, Via
from access.roles import ApiRole, Principal
from access.tables import open_engine
from domain.errors import InvalidInput
from domain.fund_account import FundAccount
from domain.household import Household, Status
from exchange.imports import ImportHasErrors, ImportRuns, dry_run, errors_book
from projections.directory import Directory

pytestmark = pytest.mark.usefixtures("close_read_models")
VIA = Via("TEST", "tests")
OFFICER = Principal("t-officer", "乡财政所 李经办", ApiRole.FUND_OFFICER, TOWNSHIP, "township")
COUNTY_OFFICIAL = Principal("t-county", "县乡村振兴局 王经办", ApiRole.COUNTY_APPROVER, COUNTY,
                            "county")


@pytest.fixture
def paying(world: World) -> dict[str, Any]:
    return {"world": world, **a_paying_world(world)}


@pytest.fixture
def queue(world: World) -> tuple[ImportRuns, Drafts]:
    engine = open_engine(world.app.database_url)
    yield ImportRuns(engine, world.app), Drafts(engine, world.app)
    engine.dispose()


def log_size(world: World) -> int:
    return world.app.recorder.max_notification_id() or 0


def pay_params(account: str, **kw: Any) -> dict[str, Any]:
    return {"account": account, "purpose": "产业扶持到户补助", "document_no": "羊财支〔2025〕7号",
            "effective_date": PAY_DAY.isoformat(), **kw}


def sign_draft(drafts: Drafts, draft_id: str, signers: Any, principal: Principal) -> Any:
    draft = drafts.get(draft_id)
    for sig in signatures_for(draft.step, draft.subject, draft.content, signers):
        draft = drafts.add_signature(principal, VIA, draft_id, sig)
    return draft


def test_a_payment_list_with_bad_rows_is_refused_row_by_row_and_nothing_is_stored(
        paying: dict[str, Any], queue: Any) -> None:
    world = paying["world"]
    runs, _ = queue
    data = gbk_csv(pay_rows())
    before = log_size(world)
    run = dry_run(world.app, Directory(), "payment_list", data, "发放清册.csv",
                  pay_params(paying["account"]))
    assert log_size(world) == before  # a dry run stores nothing in the log
    assert run.file["encoding"] == "gb18030" and run.file["header_row"] == 3
    assert run.file["sha256"] == hashlib.sha256(data).hexdigest()
    errors = {e.row: e for e in run.errors}
    # rows: title 1, 填报单位 2, header 3, then 4 … ; the bad ones are 6, 7 and 8
    assert sorted(errors) == [6, 7, 8], run.errors
    assert errors[6].column == "证件号码" and errors[6].rule == "证件号码校验位错误"
    assert "重复" in errors[7].rule and "第4行" in errors[7].rule
    assert "已于2025-06-01清退" in errors[8].rule and errors[8].column == "户编号"
    assert run.counts["rows_read"] == 6 and run.counts["rows_refused"] == 3
    assert run.counts["payees"] == 3  # row 5 (15-digit ID) and row 9 (证件号码 only) matched
    assert not run.ok and run.content is None and run.rows is None
    kept = runs.save(OFFICER, run)
    with pytest.raises(ImportHasErrors):  # nothing is stored while any row is refused
        runs.confirm(OFFICER, VIA, kept["import_id"], queue[1])
    assert log_size(world) == before
    # the errors workbook opens and lists exactly these errors, ID numbers masked
    book = openpyxl.load_workbook(io.BytesIO(errors_book(kept, "xlsx")))
    sheet = book.active
    lines = [[c.value for c in r] for r in sheet.iter_rows(min_row=4)]
    assert [(int(r[0]), r[1], r[2]) for r in lines] == [
        (e.row, e.column or None, e.rule) for e in run.errors]
    assert sheet["A1"].value == "导入错误清单" and run.file["sha256"] in sheet["A2"].value
    assert errors_book(kept, "csv").decode("utf-8-sig").splitlines()[0] == "行号,列,错误说明,原值"
    text = str(kept) + repr(lines)
    assert not [n for n in CLEAR_IDS if n in text]


def test_a_fixed_payment_list_becomes_a_draft_and_three_signatures_pay_it(
        paying: dict[str, Any], queue: Any) -> None:
    world = paying["world"]
    runs, drafts = queue
    data = gbk_csv(pay_rows(bad=False))
    run = dry_run(world.app, Directory(), "payment_list", data, "发放清册.csv",
                  pay_params(paying["account"]))
    assert run.ok, run.errors
    assert run.total_fen == 100_000 + 120_050 + 80_000 + 30_000
    assert run.content["row_count"] == 4 and run.content["total_fen"] == run.total_fen
    assert run.content["source_sha256"] == hashlib.sha256(data).hexdigest()
    before = log_size(world)
    kept = runs.save(OFFICER, run)
    draft = runs.confirm(OFFICER, VIA, kept["import_id"], drafts)
    assert runs.confirm(OFFICER, VIA, kept["import_id"], drafts).id == draft.id  # once
    assert draft.step == "FundAccount.BatchOrdered" and draft.state == "open"
    assert log_size(world) == before  # a draft is not an event
    done = sign_draft(drafts, draft.id, TOWNSHIP_SIGNERS, OFFICER)
    assert done.state == "executed", done.problem
    account = world.app.load(FundAccount, paying["account"])
    assert account.balance == 5_000_000 - run.total_fen
    bid = run.content["batch_id"]
    paid = [e for e in world.app.stored_events(account.id)
            if (getattr(e, "batch", None) or {}).get("batch_id") == bid]
    assert [e.batch["source_row"] for e in paid] == [4, 5, 6, 7]
    assert paid[1].payee_id == str(paying["households"]["H002"])
    assert paid[1].batch["holder_id_hash"] == world.app.hash_id(
        __import__("imports_support").id18(2))  # the 15-digit number became the 18-digit one
    manifest = world.app.stored_events(account.id)[-5]
    assert manifest.source_sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.source_file == "发放清册.csv"


def test_a_bank_return_answers_every_payment_once(paying: dict[str, Any], queue: Any) -> None:
    world = paying["world"]
    runs, drafts = queue
    run = dry_run(world.app, Directory(), "payment_list", gbk_csv(pay_rows(bad=False)),
                  "发放清册.csv", pay_params(paying["account"]))
    draft = runs.confirm(OFFICER, VIA, runs.save(OFFICER, run)["import_id"], drafts)
    sign_draft(drafts, draft.id, TOWNSHIP_SIGNERS, OFFICER)
    bid = run.content["batch_id"]
    # one payment not answered: refused, nothing stored
    missing = dry_run(world.app, Directory(), "bank_return", utf8_csv(return_rows(missing=True)),
                      "回盘.csv", {"batch": bid, "effective_date": "2025-07-03"})
    assert not missing.ok
    assert [e.row for e in missing.errors] == [0] and "没有回盘结果" in missing.errors[0].rule
    data = utf8_csv(return_rows())
    ret = dry_run(world.app, Directory(), "bank_return", data, "回盘.csv",
                  {"batch": bid, "effective_date": "2025-07-03"})
    assert ret.ok, ret.errors
    assert ret.counts["credited"] == 3 and ret.counts["returned"] == 1
    assert ret.rows[0]["reason"] == "账户已销户" and ret.rows[0]["amount_fen"] == 120_050
    draft = runs.confirm(OFFICER, VIA, runs.save(OFFICER, ret)["import_id"], drafts)
    done = sign_draft(drafts, draft.id, TOWNSHIP_SIGNERS, OFFICER)
    assert done.state == "executed", done.problem
    account = world.app.load(FundAccount, paying["account"])
    assert account.balance == 5_000_000 - run.total_fen + 120_050
    names = [type(e).__qualname__ for e in world.app.stored_events(account.id)][-2:]
    assert names == ["FundAccount.ReturnsRecorded", "FundAccount.PaymentReturned"]
    assert world.app.stored_events(account.id)[-2].source_sha256 == hashlib.sha256(
        data).hexdigest()
    with pytest.raises(InvalidInput) as err:  # the batch has its return
        dry_run(world.app, Directory(), "bank_return", data, "回盘.csv", {"batch": bid})
    assert err.value.field == "batch"


def test_a_roster_groups_persons_into_households_and_adds_only_new_ones(
        world: World, queue: Any) -> None:
    a_paying_world(world)
    runs, drafts = queue
    bad = dry_run(world.app, Directory(), "roster", xlsx(roster_rows(with_bad=True)),
                  "花名册.xlsx", {"county": COUNTY, "as_of": "2025-06-30"})
    assert not bad.ok
    rules = {e.row: (e.column, e.rule) for e in bad.errors}
    assert rules[17][0] == "村" and "不是本县的行政村" in rules[17][1]
    assert rules[18] == ("证件号码", "证件号码校验位错误")
    data = xlsx(roster_rows())
    before = log_size(world)
    run = dry_run(world.app, Directory(), "roster", data, "花名册.xlsx",
                  {"county": COUNTY, "as_of": "2025-06-30"})
    assert log_size(world) == before
    assert run.ok, run.errors
    assert run.counts["households"] == 5 and run.counts["households_new"] == 3
    assert run.counts["households_existing"] == 1 and run.counts["households_differing"] == 1
    assert run.existing[0]["household_code"] == "H001"
    assert run.differences[0]["household_code"] == "H002"
    assert [d["field"] for d in run.differences[0]["fields"]] == ["income_per_capita_fen"]
    by_code = {r["household_code"]: r for r in run.rows}
    assert [m["relation"] for m in by_code["GJ003"]["members"]] == [
        "head", "spouse", "child", "parent"]
    assert by_code["GJ002"]["village_code"] == OTHER_VILLAGE
    assert by_code["GJ002"]["exited_on"] == "2019-12-31"
    assert by_code["GJ003"]["income_per_capita_fen"] == 310_000
    assert by_code["GJ001"]["effective_date"] == "2016-01-01"
    assert by_code["GJ001"]["source_rows"] == [4, 5, 6]
    kept = runs.save(COUNTY_OFFICIAL, run)
    draft = runs.confirm(COUNTY_OFFICIAL, VIA, kept["import_id"], drafts)
    assert draft.step == "Roster.Imported"
    done = sign_draft(drafts, draft.id, COUNTY_SIGNERS, COUNTY_OFFICIAL)
    assert done.state == "executed", done.problem
    gj3 = world.app.load(Household, Household.create_id("GJ003"))
    assert gj3.village_code == VILLAGE and len(gj3.members) == 4
    assert gj3.status_on(PAY_DAY) is Status.REGISTERED
    gj2 = world.app.load(Household, Household.create_id("GJ002"))
    assert gj2.status_on(PAY_DAY) is Status.EXITED
    first = world.app.stored_events(gj3.id)[0]
    assert first.batch["import_id"] == run.content["import_id"]
    assert first.batch["source_rows"] == [9, 10, 11, 12]
    roster = world.app.stored_events(__import__("uuid").UUID(draft.subject))[0]
    assert roster.source_sha256 == hashlib.sha256(data).hexdigest()


def test_the_clear_id_number_is_in_no_stored_row(paying: dict[str, Any], queue: Any) -> None:
    """After a payment list and a roster are imported, no clear ID number (18 or 15
    digits) is anywhere in the events, the drafts or the kept dry runs."""
    world = paying["world"]
    runs, drafts = queue
    run = dry_run(world.app, Directory(), "payment_list", gbk_csv(pay_rows(bad=False)),
                  "发放清册.csv", pay_params(paying["account"]))
    draft = runs.confirm(OFFICER, VIA, runs.save(OFFICER, run)["import_id"], drafts)
    sign_draft(drafts, draft.id, TOWNSHIP_SIGNERS, OFFICER)
    runs.save(OFFICER, dry_run(world.app, Directory(), "payment_list", gbk_csv(pay_rows()),
                               "发放清册.csv", pay_params(paying["account"])))
    found = []
    with runs.engine.connect() as conn:
        for table in ("import_runs", "drafts"):
            found += [str(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table}")]
    for n in world.app.recorder.select_notifications(1, 10_000):
        found.append(bytes(n.state).decode("utf-8", "replace"))
    blob = "\n".join(found)
    assert "H001户主" in blob  # the rows are there …
    assert [n for n in CLEAR_IDS if n in blob] == []  # … but never a clear ID number


def test_cli_import_payments_dry_run_then_draft(paying: dict[str, Any], tmp_path: Any,
                                               monkeypatch: Any, restore_logging: Any) -> None:
    from cli import app as cli_app

    world = paying["world"]
    monkeypatch.setenv("ZHUISU_DATABASE_URL", world.app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(world.app.pepper_file))
    runner = CliRunner()
    bad = tmp_path / "发放清册.csv"
    bad.write_bytes(gbk_csv(pay_rows()))
    out = tmp_path / "错误清单.xlsx"
    args = ["import", "payments", str(bad), "--account", paying["account"], "--purpose",
            "hh_industry", "--document-no", "羊财支〔2025〕7号", "--date", PAY_DAY.isoformat()]
    result = runner.invoke(cli_app, [*args, "--dry-run", "--errors", str(out)])
    assert result.exit_code == 2, result.output
    assert "拒绝 3 行" in result.output and "证件号码校验位错误" in result.output
    assert openpyxl.load_workbook(out).active["A1"].value == "导入错误清单"
    assert [n for n in CLEAR_IDS if n in result.output] == []
    good = tmp_path / "发放清册2.csv"
    good.write_bytes(gbk_csv(pay_rows(bad=False)))
    before = log_size(world)
    result = runner.invoke(cli_app, ["import", "payments", str(good), "--account",
                                     paying["account"], "--purpose", "hh_industry",
                                     "--document-no", "羊财支〔2025〕8号", "--date",
                                     PAY_DAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "草稿" in result.output and "zhuisu sign --draft" in result.output
    assert log_size(world) == before
