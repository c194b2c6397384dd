"""Models every router shares: problems, stored events and signatures, pages, examples.

Each router keeps its own request and response models beside its routes; what is here is
what several show.  Shapes are checked here; their meaning (which step, which fields, who
may sign) is the domain's, reported back as problem details with the same rule and field.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api import problems

T = TypeVar("T")

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Only a calendar date written YYYY-MM-DD (or a date): pydantic would also take a
    number as seconds since 1970, which no business date here is."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value  # pydantic checks the calendar (2025-02-30 is refused)
    raise ValueError("must be a date written YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
"""A business date in a request (``format: date``), strictly ISO 8601."""

HOUSEHOLD_ID = "3aff0316-cb8b-5c12-b32a-e32c0f51c0d8"
OFFICIAL_ID = "0c3d5b61-1f4e-5a0e-9d0b-2b8f3c7a9e10"
ACCOUNT_ID = "7d1e0b9a-0c59-5b0e-8a4f-5f2f3f1d2c3b"

APPLIED_CONTENT = {
    "household_code": "H1", "village_code": "V", "effective_date": "2025-01-05",
    "head_name": "张三",
    "members": [{"name": "张三", "relation": "head", "id_number_hash": "9f2c…64 hex digits"}],
    "main_cause": "illness", "secondary_causes": [], "income_per_capita_fen": 200000,
    "bank_account_hash": None,
}
SIGNATURE = {"official_id": OFFICIAL_ID, "role": "preparer", "key_id": "3b7f0c1d2e4a5968",
             "signature": "base64 Ed25519 signature over the canonical step message"}


class SignatureOut(BaseModel):
    """A stored signature, with the position it was signed under (谁签字谁负责)."""

    official_id: str
    role: str
    key_id: str
    signature: str
    position: str | None = None
    position_region: str | None = None
    responsibility: str | None = None


class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "position": 1, "type": "Household.Applied", "recorded_at": "2025-01-05T08:00:00+00:00",
        "fields": APPLIED_CONTENT,
        "signatures": [{**SIGNATURE, "position": "village_accountant", "position_region": "V",
                        "responsibility": "handling"}]}]})

    position: int = Field(description="version within the aggregate (1 = creation)")
    type: str
    recorded_at: str
    fields: dict[str, Any] = Field(description="the signed content of the step")
    signatures: list[SignatureOut]


class Page(BaseModel, Generic[T]):
    """One page of a list; ask again with ``offset=next_offset`` for the next."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class Created(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "9b2f0a4e-8d7c-5b1a-9e3f-2c4d6e8f0a1b", "code": "522625100003"}]})

    id: str
    code: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details, extended with the refusing rule and the offending field."""

    model_config = ConfigDict(json_schema_extra={"examples": [problems.PROBLEM_EXAMPLE]})

    type: str
    title: str
    status: int
    detail: str
    rule: str
    field: str | None = None
    instance: str | None = None


_MEANING = {
    401: "no bearer token, or an unknown or revoked one (NotAuthenticated)",
    403: "refused: the token's role may not (RoleNotPermitted), the subject is outside its "
         "jurisdiction (OutsideJurisdiction), or a signature rule failed",
    404: "no such subject (NotFound)",
    409: "refused by the subject's state (e.g. StepOutOfOrder, AlreadyExists), a concurrent "
         "write on the same aggregate (ConcurrentWrite: nothing stored, retry), or the first "
         "request with this Idempotency-Key is still running",
    422: "invalid input, naming the field and the rule (InvalidInput, IdempotencyKeyReused, "
         "and the domain's own rules)",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route may answer (problem+json, see ``http``)."""
    return {code: {"model": ProblemOut, "description": _MEANING[code]} for code in codes}


READ_PROBLEMS = problem_responses(401, 403, 404, 422)
WRITE_PROBLEMS = problem_responses(401, 403, 404, 409, 422)
