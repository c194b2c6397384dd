"""Who looked at what: the access log of every read of personal or money data, by any
role (``access.reads``), for administrators, each within their own jurisdiction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AccessLogReader
from access.roles import ApiRole
from api.schemas import HOUSEHOLD_ID, problem_responses

router = APIRouter(tags=["access log"])


class AccessEntry(BaseModel):
    id: int
    at: str
    token_id: str
    actor: str = Field(description="the token's name")
    role: str
    method: str
    route: str
    subject_kind: str
    subject_id: str
    request_id: str | None


class AccessPage(BaseModel):
    """Entries oldest first; ask again with ``after=next_after`` for the next page."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": 41, "at": "2025-03-02T09:15:02+00:00",
                   "token_id": "5f0c…32 hex", "actor": "县纪委 王检查", "role": "inspector",
                   "method": "GET", "route": "/households/{household_id}",
                   "subject_kind": "household", "subject_id": HOUSEHOLD_ID,
                   "request_id": "7c9e…"}],
        "limit": 100, "next_after": 41}]})

    items: list[AccessEntry]
    limit: int
    next_after: int | None = Field(description="the id to continue after; null on the last page")


@router.get("/access-log", response_model=AccessPage, responses=problem_responses(401, 403, 422))
def get_access_log(
        request: Request, admin: AccessLogReader,
        after: Annotated[int, Query(ge=0, le=2**62, description="entries after this id")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        subject_id: Annotated[str | None, Query(max_length=64)] = None,
        token_id: Annotated[str | None, Query(max_length=32)] = None,
        role: Annotated[ApiRole | None, Query()] = None) -> Any:
    """Reads of personal or money data (households, accounts, projects, officials, cases,
    flags, regions' figures, log records) by every role, one entry per subject shown, about
    subjects within the caller's jurisdiction."""
    items = request.app.state.access_log.page(
        admin, after=after, limit=limit, subject_id=subject_id, token_id=token_id,
        role=role.value if role else None)
    return {"items": items, "limit": limit,
            "next_after": items[-1]["id"] if len(items) == limit else None}
