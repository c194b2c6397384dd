"""The store's door: it opens only with the ID pepper it was made with, and a SQLite store's
files are readable by their owner only (0600, like the keys)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from factories import (
    PROVINCE,
    TOWNSHIP,
    a_county_world,
    a_funded_account,
    id_number,
    official,
)
from sqlalchemy import select
from typer.testing import CliRunner

from cli import app as cli
from domain.errors import InvalidInput
from projections import runner
from store.engines import new_engine
from store.settings import Settings, build_app, store_settings


def a_store_with_events(store: Any) -> tuple[str, Path]:
    """A store holding a county's events, made with its own pepper file."""
    made = store.new_app()
    a_county_world(made)
    return made.database_url, made.pepper_file


def another_pepper(tmp_path: Path) -> Path:
    path = tmp_path / "another-pepper"
    path.write_text("ab" * 32)
    return path


def test_a_store_refuses_to_open_with_another_pepper(store: Any, tmp_path: Path) -> None:
    url, pepper = a_store_with_events(store)

    with pytest.raises(InvalidInput) as refused:
        build_app(Settings(database_url=url, id_pepper_file=another_pepper(tmp_path)))
    assert refused.value.field == "ZHUISU_ID_PEPPER_FILE"
    assert "not the one this store was made with" in refused.value.message
    assert str(tmp_path / "another-pepper") in refused.value.message

    again = store.app_on(url, pepper)  # the pepper it was made with still opens it, and
    first = again.official(official("finance_officer", PROVINCE))  # its hashes match
    assert first.id_number_hash == again.hash_id(id_number(1))


def test_the_store_keeps_a_fingerprint_of_the_pepper_never_the_pepper(store: Any) -> None:
    url, pepper = a_store_with_events(store)
    secret = pepper.read_text().strip()
    engine = new_engine(url, "tables")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(store_settings)).all()
    finally:
        engine.dispose()
    [(name, value)] = [tuple(r) for r in rows]
    assert name == "id_pepper_fingerprint"
    assert len(value) == 64 and value != secret and secret not in value
    assert bytes.fromhex(secret).hex() not in value


def test_a_new_store_made_with_a_pepper_opens_with_it_on_each_start(store: Any) -> None:
    url = store.new_database_url()
    first = store.app_on(url)
    a_county_world(first)
    second = store.app_on(url)  # the same pepper file: no refusal, hashes agree
    assert second.hash_id(id_number(7)) == first.hash_id(id_number(7))


def test_the_cli_refuses_another_pepper_in_one_line(tmp_path: Path, monkeypatch: Any,
                                                    restore_logging: None) -> None:
    url = f"sqlite:///{tmp_path}/z.db"
    made = build_app(Settings(database_url=url, id_pepper_file=tmp_path / "pepper"))
    a_county_world(made)
    made.close()
    monkeypatch.setenv("ZHUISU_DATABASE_URL", url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(another_pepper(tmp_path)))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    for verb in (["show-account", f"{TOWNSHIP}/central"], ["serve", "--no-demo"]):
        result = runner.invoke(cli, verb)
        assert result.exit_code == 2, (verb, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "error: InvalidInput [ZHUISU_ID_PEPPER_FILE]: the ID pepper in"), result.output
        assert "Traceback" not in result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_sqlite_store_and_its_wal_and_shm_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which made them 0644
    try:
        folder = tmp_path / "var"
        url = f"sqlite:///{folder}/zhuisu.db"
        app = build_app(Settings(database_url=url, id_pepper_file=folder / "id-pepper"))
        app.database_url = url  # type: ignore[attr-defined]
        try:
            a_funded_account(a_county_world(app), TOWNSHIP, 1_000)
            runner.catch_up(app)  # the read models write through WAL too
            files = {p.name: mode(p) for p in folder.iterdir()}
        finally:
            app.close()
            runner.close_sources()
    finally:
        os.umask(old)
    assert {"zhuisu.db", "zhuisu.db-wal", "zhuisu.db-shm", "id-pepper"} <= set(files), files
    assert all(m == 0o600 for m in files.values()), {n: oct(m) for n, m in files.items()}
    assert mode(folder) == 0o700


def test_whoever_opens_a_new_sqlite_store_first_makes_it_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        for n, opener in enumerate((lambda url: new_engine(url, "tables").dispose(),
                                    lambda url: new_engine(url, "read_models").dispose(),
                                    lambda url: runner.source_for(url))):
            path = tmp_path / f"store-{n}" / "zhuisu.db"
            opener(f"sqlite:///{path}")
            assert mode(path) == 0o600, (n, oct(mode(path)))
    finally:
        os.umask(old)
        runner.close_sources()
