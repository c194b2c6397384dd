"""A creation step's subject is learnt before the aggregate exists: the published derivation.

``GET /ids/{kind}/{code}`` and ``zhuisu id KIND CODE`` give the id an aggregate known by a
code has, ``uuid5(uuid5(NAMESPACE_URL, "https://zhuisu.example/ids"), "{kind}:{code}")``;
a client computes the id, signs the creation step over it and submits it; ``zhuisu sign``
fills a creation step's subject in by itself.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_support import refused
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    a_county_world,
    application,
    key_for,
    official,
    official_id,
    project_approval,
    sign,
)
from typer.testing import CliRunner

from cli import app as cli
from domain.case import Case
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from domain.project import Project
from domain.region import Region, Unit
from domain.signing import b64

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://zhuisu.example/ids")
runner = CliRunner()


def derived(kind: str, code: str) -> str:
    """The published derivation, computed here from its description alone."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{code}"))


# the route ------------------------------------------------------------------------------
def test_a_client_creates_a_household_by_computing_its_id(api, world) -> None:
    body = api.client.get("/ids/household/H7").json()
    assert body["id"] == derived("household", "H7") == str(Household.create_id("H7"))
    assert (body["namespace"], body["name"]) == (str(NAMESPACE), "household:H7")
    assert body["derivation"] == f'uuid5({NAMESPACE}, "household:H7")'

    command = sign(world, "Household.Applied", body["id"], application(world, "H7"))
    r = api.as_("village_official", VILLAGE).post("/commands", json=command)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert (answer["step"], answer["subject"], answer["recorded"]) == (
        "Household.Applied", body["id"], True)
    assert r.headers["Location"] == f"/households/{body['id']}"
    assert api.client.get(f"/households/{body['id']}").json()["code"] == "H7"

    pid = api.client.get("/ids/project/PRJ9").json()["id"]
    project = sign(world, "Project.Approved", pid, project_approval("PRJ9"))
    r = api.as_("county_approver", COUNTY).post("/commands", json=project)
    assert (r.status_code, r.json()["subject"]) == (201, pid)

    wrong = sign(world, "Household.Applied", derived("household", "H8"),
                 application(world, "H9"))
    refused(api.as_("village_official", VILLAGE).post("/commands", json=wrong), 422,
            "InvalidInput", "subject")


def test_every_kind_gives_its_aggregates_own_id(api, world) -> None:
    known = {
        "household": ("H1", Household.create_id("H1")),
        "project": ("PRJ1", Project.create_id("PRJ1")),
        "account": (f"{TOWNSHIP}/central", FundAccount.create_id(TOWNSHIP, "central")),
        "official": (official("accountant", VILLAGE), Official.create_id(
            official("accountant", VILLAGE))),
        "region": (VILLAGE, Region.create_id(VILLAGE)),
        "unit": (f"U{VILLAGE}", Unit.create_id(f"U{VILLAGE}")),
        "case": ("纪案〔2025〕1号", Case.create_id("纪案〔2025〕1号")),
    }
    for kind, (code, expected) in known.items():
        body = api.client.get(f"/ids/{kind}/{code}").json()
        assert body["id"] == str(expected) == derived(kind, code), kind
    # …and what exists is found under it
    account = api.client.get(f"/ids/account/{TOWNSHIP}/central").json()["id"]
    assert api.client.get(f"/accounts/{account}").status_code == 200
    who = api.client.get(f"/ids/official/{official('accountant', VILLAGE)}").json()["id"]
    assert api.client.get(f"/officials/{who}").json()["code"] == official("accountant", VILLAGE)


def test_a_bad_kind_or_code_is_refused_naming_the_field(api) -> None:
    refused(api.client.get("/ids/planet/H1"), 422, "InvalidInput", "kind")
    refused(api.client.get(f"/ids/account/{TOWNSHIP}"), 422, "InvalidInput", "code")
    refused(api.client.get(f"/ids/account/{TOWNSHIP}/gold"), 422, "InvalidInput", "code")
    refused(api.client.get(f"/ids/household/{'H' * 101}"), 422, "InvalidInput", "code")


def test_the_catalogue_says_where_a_creation_steps_subject_comes_from(api) -> None:
    steps = api.client.get("/steps").json()
    assert steps["Household.Applied"]["subject"] == {"kind": "household",
                                                     "code_field": "household_code"}
    assert steps["Project.Approved"]["subject"] == {"kind": "project",
                                                    "code_field": "project_code"}
    assert "subject" not in steps["Household.ApprovedByCounty"]


# the command line ---------------------------------------------------------------------------
@pytest.fixture
def cli_world(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None):
    url = store.new_database_url()
    app = store.app_on(url)
    world = a_county_world(app)
    monkeypatch.setenv("ZHUISU_DATABASE_URL", url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    return world


def key_file(tmp_path: Path, code: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"private_key": b64(key_for(code).private_bytes())}, f)
    return path


def cli_sign(tmp_path: Path, command: dict[str, Any], code: str, role: str) -> Any:
    unsigned = tmp_path / "unsigned.json"
    unsigned.write_text(json.dumps(command, ensure_ascii=False), encoding="utf-8")
    return runner.invoke(cli, ["sign", str(unsigned), "--key", str(key_file(tmp_path, code)),
                               "--official", official_id(code), "--role", role])


def test_zhuisu_id_then_sign_and_submit_creates_the_household(cli_world, tmp_path) -> None:
    result = runner.invoke(cli, ["id", "household", "H7"])
    assert result.exit_code == 0, result.output
    hid = result.stdout.strip()
    assert hid == derived("household", "H7")
    explained = json.loads(runner.invoke(cli, ["id", "household", "H7", "--explain"]).stdout)
    assert explained["derivation"] == f'uuid5({NAMESPACE}, "household:H7")'

    command = {"step": "Household.Applied", "subject": hid,
               "content": application(cli_world, "H7")}
    signed = cli_sign(tmp_path, command, official("accountant", VILLAGE), "preparer")
    assert signed.exit_code == 0, signed.output
    (tmp_path / "signed.json").write_text(signed.stdout, encoding="utf-8")
    submitted = runner.invoke(cli, ["submit", str(tmp_path / "signed.json")])
    assert submitted.exit_code == 0, submitted.output
    answer = json.loads(submitted.stdout)
    assert (answer["step"], answer["subject"], answer["recorded"]) == (
        "Household.Applied", hid, True)
    assert cli_world.app.load(Household, uuid.UUID(hid)).code == "H7"


def test_zhuisu_sign_fills_in_a_creation_steps_subject_and_refuses_a_wrong_one(
        cli_world, tmp_path) -> None:
    staff = official("poverty_staff", COUNTY)
    command = {"step": "Project.Approved", "content": project_approval("PRJ9")}
    signed = cli_sign(tmp_path, command, staff, "preparer")
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["subject"] == derived("project", "PRJ9")

    wrong = cli_sign(tmp_path, {**command, "subject": derived("project", "PRJ8")}, staff,
                     "preparer")
    assert wrong.exit_code == 1
    assert wrong.stderr.count("\n") == 1 and derived("project", "PRJ9") in wrong.stderr

    nameless = {"step": "Project.Approved", "content": {**project_approval(), "project_code": ""}}
    refused_ = cli_sign(tmp_path, nameless, staff, "preparer")
    assert refused_.exit_code == 2 and "content.project_code" in refused_.stderr


def test_zhuisu_id_refuses_an_unknown_kind_in_one_line(cli_world) -> None:
    result = runner.invoke(cli, ["id", "planet", "H1"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "[kind]" in result.stderr
    assert "Traceback" not in result.output
