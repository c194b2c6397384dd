"""``zhuisu token``: create (shown once), list, revoke — tokens stored only as hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli import app
from access.tables import open_engine
from access.tables import tokens as token_table
from store.settings import Settings, build_app
from access.tokens import Tokens
from domain.application import Zhuisu

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    database = f"sqlite:///{tmp_path}/z.db"
    monkeypatch.setenv("ZHUISU_DATABASE_URL", database)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    app: Zhuisu = build_app(Settings.from_env())
    for code, level, parent in [("P", "province", None), ("C", "city", "P"),
                                ("K", "county", "C")]:
        app.create_region(code, code, level, parent)
    app.close()
    return database


def tokens(url: str) -> Tokens:
    return Tokens(open_engine(url))


def test_create_prints_the_token_once_and_stores_its_hash(url: str) -> None:
    result = runner.invoke(app, ["token", "create", "--role", "inspector", "--region", "K",
                                 "--name", "县纪委 王检查"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("zs_") and "\n" not in token
    assert "inspector" in result.stderr and "county K" in result.stderr
    assert "shown only this once" in result.stderr and token not in result.stderr

    principal = tokens(url).authenticate(token)
    assert principal is not None
    assert (principal.name, principal.role.value, principal.region_code,
            principal.region_level) == ("县纪委 王检查", "inspector", "K", "county")
    with tokens(url).engine.connect() as conn:
        [row] = [dict(r._mapping) for r in conn.execute(select(token_table))]
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(row.values())


def test_list_shows_who_and_where_but_never_a_token(url: str) -> None:
    admin = runner.invoke(app, ["token", "create", "--role", "admin", "--all-regions",
                                "--name", "ops"]).stdout.strip()
    runner.invoke(app, ["token", "create", "--role", "reviewer", "--region", "C",
                        "--name", "third-party assessment"])
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert "admin" in lines[0] and "all regions" in lines[0] and lines[0].endswith("ops")
    assert "reviewer" in lines[1] and "city C" in lines[1]
    assert admin not in listed.stdout


def test_revoke_stops_a_token_at_once(url: str) -> None:
    token = runner.invoke(app, ["token", "create", "--role", "fund_officer", "--region", "K",
                                "--name", "县财政局 出纳"]).stdout.strip()
    [record] = tokens(url).list()
    result = runner.invoke(app, ["token", "revoke", record.id])
    assert result.exit_code == 0 and record.id in result.stdout
    assert tokens(url).authenticate(token) is None
    assert runner.invoke(app, ["token", "list"]).stdout == ""
    assert "revoked" in runner.invoke(app, ["token", "list", "--all"]).stdout


@pytest.mark.parametrize("args,code,message", [
    (["--role", "admin", "--name", "x"], 1, "exactly one of --region CODE or --all-regions"),
    (["--role", "admin", "--name", "x", "--region", "K", "--all-regions"], 1, "exactly one"),
    (["--role", "admin", "--name", "x", "--region", "nowhere"], 2, "NotFound [region]"),
    (["--role", "admin", "--name", " ", "--all-regions"], 2, "InvalidInput [name]"),
    (["--role", "boss", "--name", "x", "--all-regions"], 2, "boss"),
])
def test_create_refuses_what_it_cannot_bind(url: str, args: list[str], code: int,
                                            message: str) -> None:
    result = runner.invoke(app, ["token", "create", *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert tokens(url).list() == []


def test_revoking_an_unknown_token_is_refused(url: str) -> None:
    result = runner.invoke(app, ["token", "revoke", "0" * 32])
    assert result.exit_code == 2 and "NotFound [token_id]" in result.stderr
