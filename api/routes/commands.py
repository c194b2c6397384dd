"""Signed steps: ``POST /commands`` runs one, ``GET /steps`` lists them all.

Who may submit which step is ``access.roles.STEPS_BY_ROLE``; the command must lie in the
token's jurisdiction, which is the region of its subject (the household's village, the
account's region, the project's region; for a creation step, the region its content
names).  The signatures are then the domain's to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import App, IdempotentWrite, Reader, Submitter, region_path_of
from access.roles import check_covers, check_may_submit
from api.schemas import APPLIED_CONTENT, HOUSEHOLD_ID, SIGNATURE, WRITE_PROBLEMS, problem_responses
from projections.aggregates import step_catalogue
from domain.application import STEPS, Zhuisu
from domain.errors import InvalidInput
from domain.region import RegionPath
from domain.signing import Role

router = APIRouter(tags=["commands"])

# Where a recorded step's subject can be read back.
LOCATIONS = {"Household": "/households/", "FundAccount": "/accounts/", "Project": "/projects/"}
# Creation steps: the content field naming the region of the aggregate to be.
CREATION_REGION = {"Household.Applied": "village_code", "Project.Approved": "region_code"}


class SignatureIn(BaseModel):
    """One official's signature over the step (see ``domain.signing`` for the exact bytes)."""

    official_id: str = Field(min_length=1, max_length=64)
    role: Role
    key_id: str = Field(min_length=1, max_length=64)
    signature: str = Field(min_length=1, max_length=200)


class CommandIn(BaseModel):
    """A signed command envelope: ``content`` is exactly what every signer signed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "step": "Household.Applied", "subject": HOUSEHOLD_ID, "content": APPLIED_CONTENT,
        "signatures": [SIGNATURE]}]})

    step: str = Field(max_length=100, description="a step of GET /steps, e.g. Household.Applied")
    subject: str | None = Field(None, max_length=64,
                                description="aggregate id; optional for creation steps")
    content: dict[str, Any]
    signatures: list[SignatureIn] = Field(max_length=10)


class CommandResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"step": "Household.Applied", "subject": HOUSEHOLD_ID, "recorded": True}]})

    step: str
    subject: str
    recorded: bool = Field(description="false: an exact retry of a step already recorded")


class SignerRule(BaseModel):
    role: str
    level: str = Field(description="region level of the signer's position; 'account' = the "
                                   "account's own level")
    positions: list[str] = Field(description="position kinds that grant this role")


class StepOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "aggregate": "Household", "area": "identification",
        "fields": sorted(APPLIED_CONTENT),
        "signers": [{"role": "preparer", "level": "village",
                     "positions": ["village_accountant", "work_team_member"]}]}]})

    aggregate: str
    area: str
    fields: list[str] = Field(description="every field must be present in content (null where "
                                          "it does not apply): content is signed exactly")
    signers: list[SignerRule]


def command_region(app: Zhuisu, step: str, subject: str | None,
                   content: Mapping[str, Any]) -> tuple[RegionPath, str]:
    """The region path of the command's subject, and the field that names it."""
    if step in CREATION_REGION:
        name = CREATION_REGION[step]
        code = content.get(name)
        if not isinstance(code, str):
            raise InvalidInput(f"{step} needs {name}, a region code", field=f"content.{name}")
        return app.region(code, f"content.{name}").path, f"content.{name}"
    return region_path_of(app, STEPS[step][0], subject or "", "subject"), "subject"


def command_in_jurisdiction(command: CommandIn, submitter: Submitter, app: App) -> CommandIn:
    """The command, if the caller's role may submit its step for that subject's region."""
    if command.step not in STEPS:
        raise InvalidInput(f"unknown step; one of {sorted(STEPS)}", field="step")
    check_may_submit(submitter, command.step)
    path, field = command_region(app, command.step, command.subject, command.content)
    check_covers(submitter, path, f"the subject of {command.step}", field)
    return command


@router.post("/commands", response_model=CommandResult, status_code=201,
             dependencies=[IdempotentWrite],
             responses={200: {"model": CommandResult, "description": "an exact retry of a "
                              "recorded step (without an Idempotency-Key); nothing new stored"},
                        **WRITE_PROBLEMS})
def post_command(command: Annotated[CommandIn, Depends(command_in_jurisdiction)], app: App,
                 response: Response) -> Any:
    """Run one signed step.  201 when recorded; 200 when it repeats a recorded step."""
    result = app.execute(command.model_dump(mode="json"))
    response.status_code = 201 if result["recorded"] else 200
    location = LOCATIONS.get(result["step"].split(".", 1)[0])
    if location:
        response.headers["Location"] = location + result["subject"]
    return result


@router.get("/steps", response_model=dict[str, StepOut], responses=problem_responses(401, 403))
def get_steps(_: Reader) -> Any:
    """The step catalogue: each step's content fields and who signs it at which level."""
    return step_catalogue()
