"""Officials (干部): read them; administrators register them, their positions, keys and
declared relatives (优亲厚友 checks read those; no view ever shows them).

An official's jurisdiction is the region of their unit; a position's region must lie in
the administrator's jurisdiction too.  Every official shown (one, or each of a page) is
recorded in the access log.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    Admin,
    App,
    Dir,
    IdempotentWrite,
    Paging,
    Reader,
    RegionFilter,
    list_scope,
    readable,
    record_reads,
    region_within,
    subject_of,
)
from access.roles import check_covers
from api.schemas import OFFICIAL_ID, READ_PROBLEMS, WRITE_PROBLEMS, Created, IsoDate, Page
from projections.aggregates import official_summary, official_view
from domain.official import Official
from domain.positions import ResponsibilityKind
from domain.region import Unit

router = APIRouter(tags=["officials"])

SUMMARY_EXAMPLE = {"id": OFFICIAL_ID, "code": "acc", "name": "李会计", "unit_code": "VC",
                   "region_code": "V"}
PUBLIC_KEY = "MCowBQYDK2VwAyEA…base64 of the 32-byte Ed25519 public key"


class PositionOut(BaseModel):
    kind: str
    title: str
    region_code: str
    responsibility: str
    start: str
    end: str | None


class KeyOut(BaseModel):
    key_id: str
    public_key: str
    valid_from: str
    valid_until: str | None
    revoked: bool


class OfficialSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    id: str
    code: str
    name: str
    unit_code: str
    region_code: str


class OfficialOut(OfficialSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **SUMMARY_EXAMPLE,
        "positions": [{"kind": "village_accountant", "title": "村会计(报账员)", "region_code": "V",
                       "responsibility": "handling", "start": "2020-01-01", "end": None}],
        "keys": [{"key_id": "3b7f0c1d2e4a5968", "public_key": "base64 32 bytes",
                  "valid_from": "2020-01-01", "valid_until": None, "revoked": False}]}]})

    positions: list[PositionOut]
    keys: list[KeyOut]


class OfficialIn(BaseModel):
    """Register an official in a unit.  The ID number is hashed at once, never stored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "acc@522625100001", "name": "李会计", "unit_code": "U522625100001",
         "id_number": "52262519800101001X"}]})

    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    unit_code: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32, description="resident ID number "
                           "(公民身份号码); kept only as its keyed hash")


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "village_accountant", "region_code": "522625100001", "start": "2025-01-01",
         "responsibility": None}]})

    kind: str = Field(min_length=1, max_length=64, description="a position kind of GET /steps "
                      "signers (e.g. village_accountant)")
    region_code: str = Field(min_length=1, max_length=64)
    start: IsoDate
    responsibility: ResponsibilityKind | None = None


class PositionEndIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "village_accountant", "region_code": "522625100001", "end": "2025-12-31"}]})

    kind: str = Field(min_length=1, max_length=64)
    region_code: str = Field(min_length=1, max_length=64)
    end: IsoDate


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"public_key": PUBLIC_KEY, "valid_from": "2025-01-01"}]})

    public_key: str = Field(min_length=1, max_length=100,
                            description="base64 of the 32-byte Ed25519 public key "
                                        "(zhuisu keygen prints it)")
    valid_from: IsoDate


class KeyRotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"public_key": PUBLIC_KEY, "effective_date": "2025-06-01"}]})

    public_key: str = Field(min_length=1, max_length=100)
    effective_date: IsoDate


class KeyRevocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"effective_date": "2025-06-01", "reason": "手机丢失"}]})

    effective_date: IsoDate
    reason: str = Field(min_length=1, max_length=500)


class RelativeIn(BaseModel):
    """Declare a relative (for 优亲厚友 checks).  The ID number is hashed at once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id_number": "52262519850202002X", "relation": "spouse"}]})

    id_number: str = Field(min_length=1, max_length=32)
    relation: str = Field(min_length=1, max_length=64)


class KeyResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"official_id": OFFICIAL_ID, "key_id": "3b7f0c1d2e4a5968"}]})

    official_id: str
    key_id: str


def _official_path(app: Any, official: Official) -> dict[str, str]:
    return app.region(official.region_code).path


def official_for_reading(official_id: UUID, request: Request, reader: Reader,
                         app: App) -> Official:
    official = app.load(Official, official_id, "official_id")
    return readable(request, reader, "official", official, _official_path(app, official),
                    "official_id")


def administered_official(official_id: UUID, admin: Admin, app: App) -> Official:
    official = app.load(Official, official_id, "official_id")
    check_covers(admin, _official_path(app, official), f"official {official.code}",
                 "official_id")
    return official


def official_to_register(official: OfficialIn, admin: Admin, app: App) -> OfficialIn:
    unit = app.load(Unit, Unit.create_id(official.unit_code), "unit_code")
    region_within(admin, app, unit.region_code, "unit_code")
    return official


def position_to_take(position: PositionIn, admin: Admin, app: App) -> PositionIn:
    region_within(admin, app, position.region_code, "region_code")
    return position


def position_to_end(position: PositionEndIn, admin: Admin, app: App) -> PositionEndIn:
    region_within(admin, app, position.region_code, "region_code")
    return position


Administered = Annotated[Official, Depends(administered_official)]
KeyId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/officials", response_model=Page[OfficialSummary], responses=READ_PROBLEMS)
def list_officials(request: Request, reader: Reader, app: App, directory: Dir,
                   paging: Paging, region: RegionFilter = None) -> Any:
    """Officials whose unit lies within a region's subtree (default: the token's)."""
    level, code = list_scope(reader, app, region)
    items, next_offset = paging.of(directory.officials_within(level, code))
    officials = [app.load(Official, oid) for oid in items]
    record_reads(request, reader, [subject_of(app, o) for o in officials])
    return {"items": [official_summary(o) for o in officials],
            "limit": paging.limit, "offset": paging.offset, "next_offset": next_offset}


@router.get("/officials/{official_id}", response_model=OfficialOut, responses=READ_PROBLEMS)
def get_official(official: Annotated[Official, Depends(official_for_reading)]) -> Any:
    """An official's positions and keys (never relatives or identity hashes)."""
    return official_view(official)


@router.post("/officials", response_model=Created, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def register_official(official: Annotated[OfficialIn, Depends(official_to_register)], app: App,
                      response: Response) -> Any:
    """Register an official in a unit (administrators)."""
    official_id = app.register_official(official.code, official.name, official.unit_code,
                                        official.id_number)
    response.headers["Location"] = f"/officials/{official_id}"
    return {"id": str(official_id), "code": official.code}


@router.post("/officials/{official_id}/positions", response_model=OfficialOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def take_position(official: Administered,
                  position: Annotated[PositionIn, Depends(position_to_take)], app: App) -> Any:
    """The official takes a position (职务) at a region from ``start``."""
    app.take_position(official.code, position.kind, position.region_code, position.start,
                      position.responsibility.value if position.responsibility else None)
    return official_view(app.load(Official, official.id))


@router.post("/officials/{official_id}/positions/end", response_model=OfficialOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def leave_position(official: Administered,
                   position: Annotated[PositionEndIn, Depends(position_to_end)], app: App) -> Any:
    """The official leaves a position on ``end`` (exclusive)."""
    app.leave_position(official.code, position.kind, position.region_code, position.end)
    return official_view(app.load(Official, official.id))


@router.post("/officials/{official_id}/keys", response_model=KeyResult, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def register_key(official: Administered, key: KeyIn, app: App) -> Any:
    """Register an Ed25519 public key for the official, valid from ``valid_from``."""
    key_id = app.register_key(official.code, key.public_key, key.valid_from)
    return {"official_id": str(official.id), "key_id": key_id}


@router.post("/officials/{official_id}/keys/{key_id}/rotation", response_model=KeyResult,
             status_code=201, dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def rotate_key(official: Administered, key_id: KeyId, rotation: KeyRotationIn,
               app: App) -> Any:
    """Replace a key by a new one from ``effective_date`` (the old one stops the day before)."""
    new_key_id = app.rotate_key(official.code, key_id, rotation.public_key,
                                rotation.effective_date)
    return {"official_id": str(official.id), "key_id": new_key_id}


@router.post("/officials/{official_id}/keys/{key_id}/revocation", response_model=OfficialOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def revoke_key(official: Administered, key_id: KeyId, revocation: KeyRevocationIn,
               app: App) -> Any:
    """Revoke a key: it signs nothing dated from ``effective_date`` or recorded from now."""
    app.revoke_key(official.code, key_id, revocation.effective_date, revocation.reason)
    return official_view(app.load(Official, official.id))


@router.post("/officials/{official_id}/relatives", response_model=OfficialOut,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def declare_relative(official: Administered, relative: RelativeIn, app: App) -> Any:
    """Declare a relative of the official by ID number (kept only as its keyed hash)."""
    app.declare_relative(official.code, relative.id_number, relative.relation)
    return official_view(app.load(Official, official.id))
