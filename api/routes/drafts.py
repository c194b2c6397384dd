"""The signing queue (签字队列) over HTTP: a step waits for its signatures, then runs once.

``POST /drafts`` (a submitting role, the jurisdiction check of ``POST /commands``: the
step must be the role's, its subject in the token's subtree) stores the step as it will
be signed; each signer fetches the exact bytes to sign (``GET /drafts/{id}/message``),
signs them on their own machine and adds only the signature (``POST
/drafts/{id}/signatures``); the last one runs the command with the checks of ``POST
/commands`` and its answer carries the receipt as that route's does.  The rules live in
``access.drafts``.

Tokens are not bound to officials: a signer is any caller whose role submits steps and
whose jurisdiction covers the draft; the Ed25519 signature, verified on arrival against
the registered official's key, is the proof of who signed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from access.drafts import STATES, Draft, Drafts, Via, drafts_on
from access.errors import Problem
from access.reads import Read
from access.roles import Action, Principal, check_covers, check_may
from api.deps import App, IdempotentWrite, Paging, Reader, Submitter, reads_of, record_reads
from api.problems import MEDIA_TYPE
from api.routes.commands import CommandIn, SignatureIn, command_in_jurisdiction
from api.schemas import APPLIED_CONTENT, READ_PROBLEMS, SIGNATURE, WRITE_PROBLEMS
from domain.household import Household
from domain.signing import b64
from runtime.logging import mask_text

router = APIRouter(tags=["drafts"])

DraftId = Annotated[str, Path(min_length=1, max_length=64, description="the draft's id")]


class DraftIn(BaseModel):
    """A step to be signed: ``content`` is exactly what every signer will sign."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "step": "Household.Applied", "content": APPLIED_CONTENT}]})

    step: str = Field(max_length=100, description="a step of GET /steps")
    subject: str | None = Field(None, max_length=64,
                                description="aggregate id; optional for creation steps")
    content: dict[str, Any]
    rows: list[dict[str, Any]] | None = Field(
        None, description="a payment batch's rows (FundAccount.BatchOrdered), passed on "
                          "unchanged beside content")
    signature: SignatureIn | None = Field(None, description="the preparer's own signature, "
                                          "if already made")


class DraftOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    step: str
    subject: str
    state: str = Field(description="open | executing | executed | refused | withdrawn | "
                                   "expired")
    required_roles: list[str]
    signed_roles: list[str]
    missing_roles: list[str]
    rows_count: int | None
    created_at: str
    created_by: str
    expires_at: str


class DraftPage(BaseModel):
    items: list[DraftOut]
    limit: int
    offset: int
    next_offset: int | None


class MessageOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "draft_id": "5b0c…", "step": "Household.Applied", "subject": "3aff…",
        "official_id": SIGNATURE["official_id"], "role": "preparer",
        "key_id": SIGNATURE["key_id"], "message_base64": "eyJjb250ZW50Ijp7…",
        "message": '{"content":{…},"signer":{…},"step":"Household.Applied",…}'}]})

    draft_id: str
    step: str
    subject: str
    official_id: str
    role: str
    key_id: str
    message_base64: str = Field(description="the exact bytes to sign with Ed25519")
    message: str = Field(description="the same bytes as UTF-8 text (canonical JSON)")


def queue(request: Request) -> Drafts:
    return drafts_on(request.app.state)


def via(request: Request) -> Via:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return Via(request.method, route, request.scope.get("state", {}).get("request_id"))


def subject_read(draft: Draft) -> Read:
    return Read(draft.subject_kind, draft.subject_ref, draft.region_path)


def content_reads(app: Any, draft: Draft) -> list[Read]:
    """The subject and the households its content pays: shown with the content."""
    return [subject_read(draft), *reads_of(app, Household, draft.payee_ids())]


def visible(principal: Principal, draft: Draft) -> Draft:
    check_covers(principal, draft.region_path, f"draft {draft.id}", "draft_id")
    return draft


def answer(request: Request, response: Response, draft: Draft) -> Any:
    """The draft; a refused execution as the problem ``POST /commands`` would answer, with
    the draft's id and state beside it."""
    if draft.state == "refused" and draft.problem:
        p = draft.problem
        problem = Problem(p["rule"], int(p["status"]), p["detail"], p.get("field"))
        request.state.problem = problem
        return JSONResponse({**problem.as_dict(mask_text(request.url.path)),
                             "draft_id": draft.id, "state": draft.state},
                            status_code=problem.status, media_type=MEDIA_TYPE)
    if draft.ran_now and draft.result and draft.result.get("recorded"):
        response.status_code = 201
    return draft.as_dict()


@router.post("/drafts", response_model=DraftOut, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def post_draft(body: DraftIn, submitter: Submitter, app: App, request: Request,
               response: Response) -> Any:
    """Submit a draft (经办): checked at once like a command (unknown step, missing or
    extra field), with the jurisdiction check of ``POST /commands``; optionally with the
    preparer's own signature."""
    command_in_jurisdiction(CommandIn(step=body.step, subject=body.subject,
                                      content=body.content, signatures=[]), submitter, app)
    draft = queue(request).submit(
        submitter, via(request), step=body.step, subject=body.subject, content=body.content,
        rows=body.rows, signature=body.signature.model_dump(mode="json") if body.signature
        else None)
    response.headers["Location"] = f"/drafts/{draft.id}"
    out = answer(request, response, draft)
    if not isinstance(out, JSONResponse):
        response.status_code = 201
    return out


@router.get("/drafts", response_model=DraftPage, responses=READ_PROBLEMS)
def list_drafts(
        reader: Reader, request: Request, paging: Paging,
        state: Annotated[Literal[STATES] | None, Query(  # type: ignore[valid-type]
            description="only drafts in this state")] = None,
        waiting_for: Annotated[str | None, Query(
            max_length=64, description="an official's id: open drafts still missing a role "
                                       "that official has not signed in")] = None,
        role: Annotated[Literal["preparer", "reviewer", "approver", "witness"] | None, Query(
            description="only open drafts still missing this role")] = None) -> Any:
    """Drafts within the token's jurisdiction, newest first (each subject shown is in the
    access log)."""
    found = queue(request).list(reader, state=state, waiting_for=waiting_for, role=role,
                                limit=paging.limit + 1, offset=paging.offset)
    items = found[:paging.limit]
    record_reads(request, reader, [subject_read(d) for d in items])
    return {"items": [d.summary() for d in items], "limit": paging.limit,
            "offset": paging.offset,
            "next_offset": paging.offset + paging.limit if len(found) > paging.limit else None}


@router.get("/drafts/{draft_id}", response_model=DraftOut, responses=READ_PROBLEMS)
def get_draft(draft_id: DraftId, reader: Reader, request: Request, app: App) -> Any:
    """A draft: content, rows count, signatures, missing roles, state, and the result
    (with log positions) or the refusal."""
    draft = visible(reader, queue(request).get(draft_id))
    record_reads(request, reader, content_reads(app, draft))
    return draft.as_dict()


@router.get("/drafts/{draft_id}/message", response_model=MessageOut, responses=READ_PROBLEMS)
def get_message(draft_id: DraftId, reader: Reader, request: Request, app: App,
                official_id: Annotated[str, Query(min_length=1, max_length=64)],
                role: Annotated[Literal["preparer", "reviewer", "approver", "witness"], Query()],
                key_id: Annotated[str, Query(min_length=1, max_length=64)]) -> Any:
    """The exact bytes ``official_id`` signs in ``role`` with ``key_id`` (``domain.signing``):
    sign them where the key is and add only the signature."""
    drafts = queue(request)
    draft = visible(reader, drafts.get(draft_id))
    message = drafts.message(draft_id, official_id, role, key_id)
    record_reads(request, reader, content_reads(app, draft))
    return {"draft_id": draft.id, "step": draft.step, "subject": draft.subject,
            "official_id": official_id, "role": role, "key_id": key_id,
            "message_base64": b64(message), "message": message.decode("utf-8")}


@router.post("/drafts/{draft_id}/signatures", response_model=DraftOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def post_signature(draft_id: DraftId, signature: SignatureIn, signer: Submitter,
                   request: Request, response: Response) -> Any:
    """Add one signature (verified on arrival).  The last one the step needs runs the
    command as ``POST /commands`` does: 201 with the result and its receipt, or the
    refusal (the draft stays, ``refused``)."""
    drafts = queue(request)
    visible(signer, drafts.get(draft_id))
    draft = drafts.add_signature(signer, via(request), draft_id,
                                 signature.model_dump(mode="json"))
    return answer(request, response, draft)


@router.post("/drafts/{draft_id}/withdraw", response_model=DraftOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def withdraw_draft(draft_id: DraftId, preparer: Submitter, request: Request) -> Any:
    """Withdraw an open draft (only whoever submitted it)."""
    check_may(preparer, Action.SUBMIT)
    drafts = queue(request)
    visible(preparer, drafts.get(draft_id))
    return drafts.withdraw(preparer, via(request), draft_id).as_dict()
