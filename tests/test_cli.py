"""The ``zhuisu`` CLI: an official's key, signing (ID numbers hashed first), submitting."""

from __future__ import annotations

import datetime as dt
import json
import stat
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from store.settings import Settings, build_app
from domain.application import Zhuisu
from domain.household import Household
from domain.identity import check_digit, hash_bank_account
from domain.official import Official

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging

START = dt.date(2020, 1, 1)
runner = CliRunner()


def id_number(n: int) -> str:
    first17 = f"11010119800101{n:03d}"
    return first17 + check_digit(first17)


def a_village_with_accountant(app: Zhuisu) -> None:
    """Province → … → village V, its committee, and accountant ``acc`` (no key yet)."""
    for code, level, parent in [("P", "province", None), ("C", "city", "P"),
                                ("K", "county", "C"), ("T", "township", "K"),
                                ("V", "village", "T")]:
        app.create_region(code, code, level, parent)
    app.establish_unit("VC", "村委会", "village_committee", "V")
    app.register_official("acc", "acc", "VC", id_number(0))
    app.take_position("acc", "village_accountant", "V", START)


def application(code: str = "H1") -> dict[str, Any]:
    """As a village clerk types it: a clear ID number, no subject, no signature yet."""
    return {"step": "Household.Applied", "content": {
        "household_code": code, "village_code": "V", "effective_date": "2025-01-05",
        "head_name": "张三", "main_cause": "illness", "secondary_causes": [],
        "members": [{"name": "张三", "relation": "head", "id_number": id_number(100)}],
        "income_per_capita_fen": 200_000, "bank_account_hash": None}}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Zhuisu:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/z.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    app = build_app(Settings.from_env())
    a_village_with_accountant(app)
    return app


@pytest.fixture
def key_file(tmp_path: Path, store: Zhuisu) -> Path:
    """A key made by ``zhuisu keygen`` and registered for ``acc``."""
    path = tmp_path / "acc.key"
    result = runner.invoke(app, ["keygen", "--out", str(path)])
    assert result.exit_code == 0, result.output
    store.register_key("acc", json.loads(path.read_text())["public_key"], START)
    return path


def sign(tmp_path: Path, key_file: Path, command: dict[str, Any]) -> Path:
    unsigned, signed = tmp_path / "cmd.json", tmp_path / "signed.json"
    unsigned.write_text(json.dumps(command, ensure_ascii=False))
    result = runner.invoke(app, ["sign", str(unsigned), "--key", str(key_file),
                                 "--official", str(Official.create_id("acc")),
                                 "--role", "preparer", "--out", str(signed)])
    assert result.exit_code == 0, result.output
    return signed


def test_sign_hashes_a_clear_bank_account_number_like_an_id_number(
        tmp_path: Path, store: Zhuisu, key_file: Path) -> None:
    command = application()
    del command["content"]["bank_account_hash"]
    command["content"]["bank_account"] = "6217 0023 1234 5678 901"
    signed = sign(tmp_path, key_file, command)

    text = signed.read_text()
    assert "6217" not in text and "bank_account\"" not in text
    envelope = json.loads(text)
    assert envelope["content"]["bank_account_hash"] == hash_bank_account(
        "6217002312345678901", store.id_pepper)
    result = runner.invoke(app, ["submit", str(signed)])
    assert result.exit_code == 0, result.stderr


def test_sign_refuses_a_bank_account_that_is_not_a_number(tmp_path: Path, store: Zhuisu,
                                                          key_file: Path) -> None:
    command = application()
    del command["content"]["bank_account_hash"]
    command["content"]["bank_account"] = "not-a-card"
    unsigned = tmp_path / "cmd.json"
    unsigned.write_text(json.dumps(command, ensure_ascii=False))
    result = runner.invoke(app, ["sign", str(unsigned), "--key", str(key_file),
                                 "--official", str(Official.create_id("acc")),
                                 "--role", "preparer"])
    assert result.exit_code != 0
    assert "content.bank_account" in result.stderr


def test_keygen_writes_a_private_key_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "me.key"
    result = runner.invoke(app, ["keygen", "--out", str(path)])
    assert result.exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = json.loads(path.read_text())
    assert {"private_key", "public_key", "key_id"} <= set(key)
    assert key["public_key"] in result.stdout and key["key_id"] in result.stdout


def test_keygen_never_overwrites_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "me.key"
    runner.invoke(app, ["keygen", "--out", str(path)])
    before = path.read_text()
    result = runner.invoke(app, ["keygen", "--out", str(path)])
    assert result.exit_code != 0 and "exists" in result.stderr
    assert path.read_text() == before


def test_sign_then_submit_records_the_step(tmp_path: Path, store: Zhuisu,
                                           key_file: Path) -> None:
    signed = sign(tmp_path, key_file, application())
    envelope = json.loads(signed.read_text())
    assert id_number(100) not in signed.read_text()
    assert envelope["content"]["members"][0]["id_number_hash"] == store.hash_id(id_number(100))
    assert envelope["subject"] == str(Household.create_id("H1"))

    result = runner.invoke(app, ["submit", str(signed)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["recorded"] is True

    shown = runner.invoke(app, ["show-household", "H1"])
    assert shown.exit_code == 0
    [event] = json.loads(shown.stdout)["events"]
    assert event["signatures"][0]["key_id"] == json.loads(key_file.read_text())["key_id"]


def test_submit_with_a_bad_signature_exits_non_zero_naming_the_rule(
        tmp_path: Path, store: Zhuisu, key_file: Path) -> None:
    signed = sign(tmp_path, key_file, application())
    envelope = json.loads(signed.read_text())
    envelope["content"]["income_per_capita_fen"] = 100  # changed after signing
    signed.write_text(json.dumps(envelope, ensure_ascii=False))

    result = runner.invoke(app, ["submit", str(signed)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: SignatureInvalid [signatures[0].signature]:")
    assert "Traceback" not in result.output


def test_user_errors_are_one_line_not_a_traceback(tmp_path: Path, store: Zhuisu) -> None:
    result = runner.invoke(app, ["submit", str(tmp_path / "missing.json")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read")
    unknown = runner.invoke(app, ["show-household", "nobody"])
    assert unknown.exit_code == 2 and "NotFound" in unknown.stderr


class FakeDemo:
    """Stands in for ``demo.build`` (another module's job): counts calls, reports progress."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @staticmethod
    def store_is_empty(app: Zhuisu) -> bool:
        return not app.recorder.max_notification_id()

    def build_demo(self, app: Zhuisu, size: str = "small", seed: int = 0,
                   progress: Any = None) -> Any:
        self.calls.append({"size": size, "seed": seed})
        for done in range(1, 4):
            progress(done, 3)
        return SimpleNamespace(households=3, officials=2, events_written=30, seconds=0.5,
                               events_per_second=60.0)


@pytest.fixture
def fake_demo(monkeypatch: pytest.MonkeyPatch) -> FakeDemo:
    demo = FakeDemo()
    module = ModuleType("demo.build")
    vars(module).update(build_demo=demo.build_demo, store_is_empty=demo.store_is_empty,
                        StoreNotEmpty=type("StoreNotEmpty", (RuntimeError,), {}))
    monkeypatch.setitem(sys.modules, "demo.build", module)
    return demo


def test_demo_fills_an_empty_store_and_reports_its_speed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_demo: FakeDemo) -> None:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    result = runner.invoke(app, ["demo", "--size", "tiny", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert fake_demo.calls == [{"size": "tiny", "seed": 3}]
    assert "30 events written" in result.stdout and "60 events/s" in result.stdout


def test_demo_refuses_a_store_that_holds_events(store: Zhuisu, fake_demo: FakeDemo) -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "already holds events" in result.stderr
    assert fake_demo.calls == []
