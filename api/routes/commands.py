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
CREATION_REGION = {"Household.Applied": "village_code", "Project.Approved": "region_code",
                   "Roster.Imported": "county_code"}


class SignatureIn(BaseModel):
    """One official's signature over the step (see ``domain.signing`` for the exact bytes)."""

    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, named

    official_id: str = Field(min_length=1, max_length=64)
    role: Role
    key_id: str = Field(min_length=1, max_length=64)
    signature: str = Field(min_length=1, max_length=200)


class CommandIn(BaseModel):
    """A signed command envelope: ``content`` is exactly what every signer signed.  A field
    other than these (and ``rows`` of a batch) is refused (422 naming it), as an unknown
    content field is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "step": "Household.Applied", "subject": HOUSEHOLD_ID, "content": APPLIED_CONTENT,
        "signatures": [SIGNATURE]}]})

    step: str = Field(max_length=100, description="a step of GET /steps, e.g. Household.Applied")
    subject: str | None = Field(None, max_length=64,
                                description="aggregate id; optional for creation steps")
    content: dict[str, Any]
    signatures: list[SignatureIn] = Field(max_length=10)
    rows: list[dict[str, Any]] | None = Field(None, max_length=500_000, description=(
        "only for FundAccount.BatchOrdered (支付令: the 分户清单's payments), "
        "FundAccount.ReturnsRecorded (回盘: the returned payments) and Roster.Imported "
        "(花名册: the households): the rows the content's rows_root, row_count (and total) "
        "commit to; the signers sign the content once (domain/batch.py).  Large files go "
        "through POST /imports instead (the body limit applies here)."))


RECEIPT_EXAMPLE = {
    "type": "zhuisu-receipt/v1", "checkpoint_id": 386,
    "checkpoint": "zhuisu.example/log\n1208\nYdAP6f08…=\ntime 2026-11-23T16:47:39Z\n\n"
                  "— zhuisu.example/log b74GqDYg…5QE=\n",
    "entries": [{"position": 1208, "leaf_index": 1207, "record": "AQAAAAAAAAS4…",
                 "proof": ["q0e3…=", "…"]}]}


class CommandResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"step": "Household.Applied", "subject": HOUSEHOLD_ID, "recorded": True,
         "receipt": RECEIPT_EXAMPLE}]})

    step: str
    subject: str
    recorded: bool = Field(description="false: an exact retry of a step already recorded")
    receipt: dict[str, Any] | None = Field(None, description=(
        "when recorded: the log positions of the stored events under a checkpoint signed "
        "after them, each with its inclusion proof (zhuisu-receipt/v1, audit/proofs.py); "
        "keep it and check it offline with `zhuisu verify-proof FILE --key VKEY`.  "
        "`checkpoint` null: pending, fetch each proof from GET /log/proofs/inclusion?position=N "
        "(see `fetch`).  Every write route that stores events adds one to its answer."))


class SignerRule(BaseModel):
    """One way a role may be signed: by an official holding one of ``positions`` in the
    subject's region at ``level`` (for a household payment, the household's region).  The
    authoriser checks exactly these rule objects (``domain.positions``)."""

    role: str
    level: str = Field(description="region level of the signer's position")
    positions: list[str] = Field(description="position kinds that may sign in this role here")
    account_level: str | None = Field(None, description="money steps: the entry holds for "
                                      "accounts of this level (signed at the account's level)")
    payee_kind: str | None = Field(None, description="the entry holds only for payments to "
                                   "this kind of payee (村账乡代管: a township account's "
                                   "household payment, prepared by the village's 报账员)")


class CreationSubject(BaseModel):
    kind: str = Field(description="GET /ids/{kind}/{code} gives the id")
    code_field: str = Field(description="the content field holding the code")


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
    subject: CreationSubject | None = Field(
        None, description="creation steps: the subject (signed like any other) is the id "
                          "derived from a code in the content: GET /ids/{kind}/{code}")


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
    envelope = command.model_dump(mode="json")
    if envelope.get("rows") is None:
        envelope.pop("rows", None)
    result = app.execute(envelope)
    response.status_code = 201 if result["recorded"] else 200
    location = LOCATIONS.get(result["step"].split(".", 1)[0])
    if location:
        response.headers["Location"] = location + result["subject"]
    return result


@router.get("/steps", response_model=dict[str, StepOut], response_model_exclude_none=True,
            responses=problem_responses(401, 403))
def get_steps(_: Reader) -> Any:
    """The step catalogue: each step's content fields and who signs it in which role at
    which level (money steps: per account level, and the payee kinds an entry is for only).
    Derived from the rules the signatures are checked against, so what it lists is accepted."""
    return step_catalogue()
