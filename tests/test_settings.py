"""Settings: one database URL chooses the store; the ID pepper is a private file."""

from __future__ import annotations

import stat

import pytest

from store.settings import Settings, build_app
from domain.errors import InvalidInput
from domain.identity import hash_id_number


def env_for(url: str, **kw) -> dict[str, str]:
    return Settings(database_url=url, **kw).eventsourcing_env()


def test_sqlite_url_maps_to_the_sqlite_module_and_file(tmp_path):
    db = tmp_path / "var" / "zhuisu.db"

    env = env_for(f"sqlite:///{db}")

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == str(db)
    assert env["SQLITE_LOCK_TIMEOUT"] == "30"
    assert env["AGGREGATE_CACHE_MAXSIZE"] == "5000"
    assert db.parent.is_dir()  # made ready for the first start
    assert not any(k.startswith("POSTGRES_") for k in env)


def test_relative_sqlite_path_stays_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert env_for("sqlite:///var/zhuisu.db")["SQLITE_DBNAME"] == "var/zhuisu.db"


def test_sqlite_in_memory(tmp_path):
    assert env_for("sqlite:///:memory:")["SQLITE_DBNAME"] == ":memory:"


def test_postgresql_url_maps_every_part_including_the_schema():
    env = env_for("postgresql://zhuisu:s%40cret@db.example:6543/audit?schema=county_522625")

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert {k: env[k] for k in ("POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT",
                                "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SCHEMA")} == {
        "POSTGRES_DBNAME": "audit", "POSTGRES_HOST": "db.example", "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "zhuisu", "POSTGRES_PASSWORD": "s@cret",
        "POSTGRES_SCHEMA": "county_522625"}
    assert "SQLITE_DBNAME" not in env


def test_postgresql_url_defaults():
    env = env_for("postgres://localhost/test")

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"], env["POSTGRES_DBNAME"]) == (
        "localhost", "5432", "postgres", "", "test")
    assert "POSTGRES_SCHEMA" not in env


def test_aggregate_cache_can_be_switched_off():
    assert "AGGREGATE_CACHE_MAXSIZE" not in env_for("postgresql://h/db", aggregate_cache=0)


def test_extra_env_overrides_the_mapping():
    env = env_for("postgresql://h/db", extra_env={"POSTGRES_POOL_SIZE": "20"})

    assert env["POSTGRES_POOL_SIZE"] == "20"


@pytest.mark.parametrize("url", ["mysql://h/db", "zhuisu.db", "", "sqlite://"])
def test_invalid_database_url_is_refused_naming_the_setting(url):
    with pytest.raises(InvalidInput) as refused:
        env_for(url)
    assert refused.value.field == "ZHUISU_DATABASE_URL"


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ZHUISU_DATABASE_URL", "postgresql://h/db?schema=s1")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    monkeypatch.setenv("ZHUISU_AGGREGATE_CACHE", "10")

    settings = Settings.from_env()

    assert settings.database_url == "postgresql://h/db?schema=s1"
    assert settings.id_pepper_file == tmp_path / "pepper"
    assert settings.aggregate_cache == 10
    assert settings.is_postgres


def test_id_pepper_file_is_created_with_mode_0600(tmp_path):
    path = tmp_path / "secrets" / "id-pepper"
    settings = Settings(database_url=f"sqlite:///{tmp_path}/z.db", id_pepper_file=path)

    pepper = settings.id_pepper()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(pepper) == 32
    assert settings.id_pepper() == pepper  # made once, then read


def test_app_refuses_to_start_without_its_pepper_once_the_store_holds_events(tmp_path):
    """A new pepper would make every stored ID hash unmatchable."""
    db = f"sqlite:///{tmp_path}/z.db"
    first = build_app(Settings(database_url=db, id_pepper_file=tmp_path / "pepper"))
    first.create_region("52", "贵州省", "province", None)
    first.close()

    with pytest.raises(InvalidInput) as refused:
        build_app(Settings(database_url=db, id_pepper_file=tmp_path / "lost-pepper"))
    assert refused.value.field == "ZHUISU_ID_PEPPER_FILE"
    assert not (tmp_path / "lost-pepper").exists()


def test_id_pepper_is_different_for_each_deployment(tmp_path):
    first = Settings(id_pepper_file=tmp_path / "a").id_pepper()
    second = Settings(id_pepper_file=tmp_path / "b").id_pepper()

    assert first != second


def test_app_built_from_settings_hashes_ids_with_its_pepper(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/z.db",
                        id_pepper_file=tmp_path / "pepper")
    app = build_app(settings)
    try:
        number = "11010519491231002X"
        assert app.hash_id(number) == hash_id_number(number, settings.id_pepper())
    finally:
        app.close()
