"""Request and response models of the HTTP API (with the examples /docs shows).

The shapes are checked here; their meaning (which step, which fields, who may sign) is
the domain's, reported back as problem details with the same rule and field names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.signing import Role

HOUSEHOLD_ID = "3aff0316-cb8b-5c12-b32a-e32c0f51c0d8"
OFFICIAL_ID = "0c3d5b61-1f4e-5a0e-9d0b-2b8f3c7a9e10"

APPLIED_CONTENT = {
    "household_code": "H1", "village_code": "V", "effective_date": "2025-01-05",
    "head_name": "张三",
    "members": [{"name": "张三", "relation": "head", "id_number_hash": "9f2c…64 hex digits"}],
    "main_cause": "illness", "secondary_causes": [], "income_per_capita_fen": 200000,
    "bank_account_hash": None,
}
SIGNATURE = {"official_id": OFFICIAL_ID, "role": "preparer", "key_id": "3b7f0c1d2e4a5968",
             "signature": "base64 Ed25519 signature over the canonical step message"}


class SignatureIn(BaseModel):
    """One official's signature over the step (see ``domain.signing`` for the exact bytes)."""

    official_id: str = Field(min_length=1)
    role: Role
    key_id: str = Field(min_length=1)
    signature: str = Field(min_length=1)


class CommandIn(BaseModel):
    """A signed command envelope: ``content`` is exactly what every signer signed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "step": "Household.Applied", "subject": HOUSEHOLD_ID, "content": APPLIED_CONTENT,
        "signatures": [SIGNATURE]}]})

    step: str = Field(description="a step of GET /steps, e.g. Household.Applied")
    subject: str | None = Field(None, description="aggregate id; optional for creation steps")
    content: dict[str, Any]
    signatures: list[SignatureIn]


class CommandResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"step": "Household.Applied", "subject": HOUSEHOLD_ID, "recorded": True}]})

    step: str
    subject: str
    recorded: bool = Field(description="false: an exact retry of a step already recorded")


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


class StatusChange(BaseModel):
    effective_date: str
    status: str


class HouseholdOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": HOUSEHOLD_ID, "code": "H1", "status": "applied", "village_code": "V",
        "region_path": {"province": "P", "city": "C", "county": "K", "township": "T",
                        "village": "V"},
        "members_count": 1, "main_cause": "illness", "secondary_causes": [],
        "helper_official_id": None, "history": [], "version": 1, "events": []}]})

    id: str
    code: str
    status: str
    village_code: str
    region_path: dict[str, str]
    members_count: int
    main_cause: str
    secondary_causes: list[str]
    helper_official_id: str | None
    history: list[StatusChange]
    version: int
    events: list[EventOut]


class AccountOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "7d1e0b9a-0c59-5b0e-8a4f-5f2f3f1d2c3b", "name": "K central", "region_code": "K",
        "level": "county", "fund_source": "central", "balance_fen": 1000000,
        "received_fen": 1500000, "paid_out_fen": 500000, "version": 4, "events": []}]})

    id: str
    name: str
    region_code: str
    level: str
    fund_source: str
    balance_fen: int
    received_fen: int
    paid_out_fen: int
    version: int
    events: list[EventOut]


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


class OfficialOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": OFFICIAL_ID, "code": "acc", "name": "李会计", "unit_code": "VC", "region_code": "V",
        "positions": [{"kind": "village_accountant", "title": "村会计(报账员)", "region_code": "V",
                       "responsibility": "handling", "start": "2020-01-01", "end": None}],
        "keys": [{"key_id": "3b7f0c1d2e4a5968", "public_key": "base64 32 bytes",
                  "valid_from": "2020-01-01", "valid_until": None, "revoked": False}]}]})

    id: str
    code: str
    name: str
    unit_code: str
    region_code: str
    positions: list[PositionOut]
    keys: list[KeyOut]


class SignerRule(BaseModel):
    role: str
    level: str = Field(description="region level of the signer's position; 'account' = the "
                                   "account's own level")
    positions: list[str] = Field(description="position kinds that grant this role")


class StepOut(BaseModel):
    aggregate: str
    area: str
    fields: list[str] = Field(description="every field must be present in content (null where "
                                          "it does not apply): content is signed exactly")
    signers: list[SignerRule]


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "store": "sqlite", "events": 1234}]})

    status: str
    store: str
    events: int | None = Field(description="highest notification id in the event store")


class ProblemOut(BaseModel):
    """RFC 9457 problem details, extended with the refusing rule and the offending field."""

    type: str
    title: str
    status: int
    detail: str
    rule: str
    field: str | None = None
    instance: str | None = None
