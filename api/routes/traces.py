"""Money traces and responsibility chains (资金追溯, 谁签字谁负责, 谁签字谁追回).

Read from the projections (``projections.chains``), caught up with the log first, so a
read sees every event stored before it.  The subject of each route decides the
jurisdiction: a movement's account, a household, the account or household of a signed
event, an official's region.  What a trace or chain shows is recorded in the access log,
whoever reads it: the movement's account and each household or project paid (a trace,
a payment's chain), the household (its money, its chain), the event's subject (an
event's chain), the official and each household in their liability.  Long lists are cut
at ``limit``; their counts and sums are always whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from access.reads import Read
from api.deps import (
    App,
    Reader,
    any_aggregate,
    payee_reads,
    reads_of,
    record_reads,
    region_path_of,
    subject_of,
)
from access.roles import Principal, check_covers
from api.routes.households import household_by_id
from api.schemas import ACCOUNT_ID, HOUSEHOLD_ID, OFFICIAL_ID, READ_PROBLEMS, IsoDate
from domain.application import Zhuisu
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from projections import chains, runner
from store.urls import database_url_of
from store.engines import engine_for
from projections.walks import movement

router = APIRouter(tags=["traces"], responses=READ_PROBLEMS)

MOVEMENT_ID = "dee7ea81-eed9-4272-934c-ef080475d018"
ALLOCATION_ID = "05830396-417e-472f-bb83-b0cfd2a42a7e"
RECEIPT_ID = "4792cad6-8aaf-4dbc-8c50-4db90e4cd5e3"
COUNTY_ACCOUNT = "ce1475a3-aaf7-5dc9-a4f2-d250ac9262d9"
SIGNER = {"role": "preparer", "official_id": OFFICIAL_ID, "code": "finance_accountant@T",
          "name": "王会计", "position": "township_finance_accountant", "position_region": "T",
          "responsibility": "handling", "key_id": "76650d727a6c56e2", "key_revoked_on": None}
PAYMENT = {"account_id": ACCOUNT_ID, "movement_id": MOVEMENT_ID, "kind": "disbursed",
           "amount_fen": 200000, "effective_date": "2025-03-01", "purpose": "hh_industry",
           "document_no": "镇财〔2025〕7号", "payee_kind": "household", "payee_id": HOUSEHOLD_ID,
           "returned_fen": 50000}
RECEIPT = {"account_id": COUNTY_ACCOUNT, "movement_id": RECEIPT_ID, "kind": "received",
           "amount_fen": 1000000, "effective_date": "2025-01-02", "purpose": "special_fund",
           "document_no": "财农〔2025〕1号", "source": "中央财政专项扶贫资金", "returned_fen": 0}
ALLOCATION = {"account_id": COUNTY_ACCOUNT, "movement_id": ALLOCATION_ID, "kind": "allocated",
              "amount_fen": 600000, "effective_date": "2025-01-02", "purpose": "special_fund",
              "document_no": "财农〔2025〕2号", "counterparty_id": ACCOUNT_ID, "returned_fen": 0}
SIGNED_PAYMENT = {**PAYMENT, "log_position": 119, "step": "FundAccount.Disbursed",
                  "signatures": [SIGNER]}


# read models ------------------------------------------------------------------------------
def read_models(reader: Reader, app: App) -> Engine:
    """The read models, caught up with the log first (after the caller is known)."""
    runner.catch_up(app)
    return engine_for(database_url_of(app))


ReadModels = Annotated[Engine, Depends(read_models)]
Limit = Annotated[int, Query(ge=1, le=5000, description="cut long lists at this many items")]
MovementId = Annotated[str, Path(min_length=1, max_length=64, examples=[MOVEMENT_ID],
                                 description="the movement's id (as in its signed content)")]
AccountFilter = Annotated[UUID | None, Query(description="the account the movement is on, "
                                             "when a movement id is not unique")]


def movement_account(db: Engine, reader: Principal, app: Zhuisu, movement_id: str,
                     account_id: UUID | None, kinds: tuple[str, ...], what: str) -> str:
    """The account of a movement, if it lies in the reader's jurisdiction."""
    with db.connect() as conn:
        found = movement(conn, movement_id, str(account_id) if account_id else None, kinds)
    if found is None:
        raise NotFound(f"no {what} {movement_id}", field="movement_id")
    path = region_path_of(app, FundAccount, found["account_id"], "movement_id")
    check_covers(reader, path, f"movement {movement_id}", "movement_id")
    return found["account_id"]


def record_households(request: Request, reader: Principal, app: Zhuisu,
                      household_ids: Iterable[str | None], *also: Read) -> None:
    """Record ``also`` and the households shown in the access log."""
    record_reads(request, reader, [*also, *reads_of(app, Household, household_ids)])


def account_read(app: Zhuisu, account_id: str) -> Read:
    return Read("account", account_id,
                region_path_of(app, FundAccount, account_id, "movement_id"))


# models ---------------------------------------------------------------------------------------
class Movement(BaseModel):
    """A money movement (收到, 下达, 拨付, 追回, 冲正) as the money trace keeps it."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [PAYMENT]})

    account_id: str
    movement_id: str
    kind: str
    amount_fen: int | None = None
    effective_date: str | None = None


class Signer(BaseModel):
    """One signature on a step: who, in which role and position, with which key."""

    model_config = ConfigDict(json_schema_extra={"examples": [SIGNER]})

    role: str
    official_id: str
    code: str | None
    name: str | None
    position: str | None
    position_region: str | None
    responsibility: str | None
    key_id: str | None
    key_revoked_on: str | None = Field(description="when the key was revoked, if it was")


class SignedStep(BaseModel):
    """A signed event (by its log position) and its signatures in role order."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SIGNED_PAYMENT]})

    log_position: int
    step: str
    effective_date: str | None = None
    signatures: list[Signer]


class Payee(BaseModel):
    payee_kind: str
    payee_id: str
    amount_fen: int = Field(description="fen of the traced money this payee received")
    payments: list[dict[str, Any]]


class Held(BaseModel):
    account_id: str
    amount_fen: int
    since: str = Field(description="business date of the oldest traced money still held")


class MoneyDownOut(BaseModel):
    """Where an allocation or a receipt went: payees + held + sent back = amount."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "from": ALLOCATION, "amount_fen": 600000, "paid_fen": 150000, "held_fen": 450000,
        "sent_back_fen": 0, "payee_count": 1,
        "payees": [{"payee_kind": "household", "payee_id": HOUSEHOLD_ID, "amount_fen": 150000,
                    "payments": [{**PAYMENT, "amount_fen": 150000}]}],
        "held": [{"account_id": ACCOUNT_ID, "amount_fen": 450000, "since": "2025-01-02"}],
        "sent_back": []}]})

    from_: Movement = Field(alias="from", description="the allocation or receipt traced")
    amount_fen: int
    paid_fen: int
    held_fen: int
    sent_back_fen: int
    payee_count: int = Field(description="every payee reached, however many are listed")
    payees: list[Payee] = Field(description="largest first, cut at limit")
    held: list[Held]
    sent_back: list[dict[str, Any]]


class Source(BaseModel):
    amount_fen: int
    receipt: Movement
    via: list[dict[str, Any]] = Field(description="the hops from the receipt down, top first")


class MoneyUpOut(BaseModel):
    """Where a payment (or an allocation) came from: the receipts and the hops between."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "movement": PAYMENT, "net_fen": 150000,
        "sources": [{"amount_fen": 150000, "receipt": RECEIPT,
                     "via": [{"kind": "transfer", "account_id": COUNTY_ACCOUNT,
                              "movement_id": ALLOCATION_ID}]}]}]})

    movement: Movement
    net_fen: int = Field(description="the amount less what came back (recovered, reversed)")
    sources: list[Source]


class HouseholdMoneyOut(BaseModel):
    """Everything a household received, where it came from and who signed for it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "household_id": HOUSEHOLD_ID, "received_fen": 200000, "returned_fen": 50000,
        "net_fen": 150000,
        "by_source": [{"source": "中央财政专项扶贫资金", "account_id": COUNTY_ACCOUNT,
                       "account": "522625 central", "fund_source": "central",
                       "amount_fen": 150000}],
        "payments": [{**PAYMENT, "net_fen": 150000, "signatures": [SIGNER], "sources": []}],
        "signed_by": [{"official_id": OFFICIAL_ID, "name": "王会计"}]}]})

    household_id: str
    received_fen: int
    returned_fen: int
    net_fen: int
    by_source: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    signed_by: list[dict[str, Any]]


class HouseholdChainOut(BaseModel):
    """A household's status and every signed step of its procedures, in order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "household_id": HOUSEHOLD_ID, "code": "H1", "village": "522625100001",
        "status": "registered",
        "steps": [{"log_position": 109, "originator_id": HOUSEHOLD_ID, "version": 1,
                   "step": "Household.Applied", "effective_date": "2025-01-05",
                   "signatures": [{**SIGNER, "code": "accountant@V",
                                   "position": "village_accountant"}],
                   "status_after": "applied"}]}]})

    household_id: str
    code: str
    village: str
    status: str
    steps: list[SignedStep]


class PaymentChainOut(BaseModel):
    """A payment's chain: what funded it, the payment, the payee's registration, and what
    became of it (recoveries, reversals), each step with its signers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "payment": SIGNED_PAYMENT,
        "funding": [{"amount_fen": 150000,
                     "steps": [{**RECEIPT, "log_position": 116, "step": "FundAccount.Received",
                                "hop": "received", "signatures": [SIGNER]}]}],
        "later": [], "payee": {"household_id": HOUSEHOLD_ID, "code": "H1",
                               "status": "registered", "registration": []}}]})

    payment: SignedStep
    funding: list[dict[str, Any]]
    later: list[SignedStep]
    payee: dict[str, Any] | None


class Listed(BaseModel):
    count: int = Field(description="all of them, however many are listed")
    items: list[dict[str, Any]]


class Outstanding(Listed):
    outstanding_fen: int


class Flagged(Listed):
    by_rule: dict[str, int] = Field(description="standing red flags per rule id")


class Later(BaseModel):
    households_removed: Listed
    exits_relapsed: Listed
    payments_recovered: Listed
    payments_reversed: Listed
    allocations_reversed: Listed
    receipts_reversed: Listed
    payments_to_removed_households_outstanding: Outstanding
    flagged: Flagged = Field(description="standing red flags on steps the official signed "
                             "(``GET /flags/{flag_id}`` for each)")


class LiabilityOut(BaseModel):
    """What an official signed over a period and what later became of it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "official": {"official_id": OFFICIAL_ID, "code": "finance_accountant@T",
                     "name": "王会计", "unit_code": "UT", "region_code": "T"},
        "period": {"from": "2025-01-01", "to": "2025-12-31"},
        "signed": {"steps": 1, "by_step": [{"step": "FundAccount.Disbursed",
                                            "role": "preparer", "count": 1,
                                            "amount_fen": 200000}]},
        "households_approved": {"count": 0, "items": []},
        "exits_approved": {"count": 0, "items": []},
        "later": {"households_removed": {"count": 0, "items": []},
                  "exits_relapsed": {"count": 0, "items": []},
                  "payments_recovered": {"count": 1, "items": [{
                      "account_id": ACCOUNT_ID, "movement_id": MOVEMENT_ID,
                      "step": "FundAccount.Disbursed", "role": "preparer",
                      "signed_on": "2025-03-01", "happened_on": "2025-07-01",
                      "amount_fen": 50000, "reason": "清退户不应享受产业补助",
                      "household_id": HOUSEHOLD_ID}]},
                  "payments_reversed": {"count": 0, "items": []},
                  "allocations_reversed": {"count": 0, "items": []},
                  "receipts_reversed": {"count": 0, "items": []},
                  "payments_to_removed_households_outstanding": {
                      "count": 0, "items": [], "outstanding_fen": 0},
                  "flagged": {"count": 0, "by_rule": {}, "items": []}}}]})

    official: dict[str, Any]
    period: dict[str, str | None]
    signed: dict[str, Any]
    households_approved: Listed
    exits_approved: Listed
    later: Later


# money traces -----------------------------------------------------------------------------
@router.get("/traces/down/{movement_id}", response_model=MoneyDownOut,
            response_model_by_alias=True)
def trace_down(request: Request, reader: Reader, app: App, db: ReadModels,
               movement_id: MovementId, account_id: AccountFilter = None,
               limit: Limit = 500) -> Any:
    """Down from an allocation (下达) or a receipt (收到) to every final payee, by
    first-in-first-out attribution: what was paid to whom, what is still held where, and
    what went back to the source.  The subject is the movement's (sending) account."""
    account = movement_account(db, reader, app, movement_id, account_id,
                               ("allocated", "received"), "allocation or receipt")
    trace = chains.money_down(db, movement_id, account, limit=limit)
    record_reads(request, reader, [account_read(app, account),
                                   *payee_reads(app, trace["payees"])])
    return trace


@router.get("/traces/up/{movement_id}", response_model=MoneyUpOut)
def trace_up(request: Request, reader: Reader, app: App, db: ReadModels,
             movement_id: MovementId, account_id: AccountFilter = None) -> Any:
    """Up from a payment (拨付) or an allocation to the receipts its money came from and
    the allocations it passed through.  The subject is the movement's account."""
    account = movement_account(db, reader, app, movement_id, account_id,
                               ("disbursed", "allocated"), "payment or allocation")
    trace = chains.money_up(db, movement_id, account)
    record_reads(request, reader, [account_read(app, account),
                                   *payee_reads(app, [trace["movement"]])])
    return trace


@router.get("/households/{household_id}/money", response_model=HouseholdMoneyOut)
def household_money(household: Annotated[Household, Depends(household_by_id)],
                    db: ReadModels) -> Any:
    """Everything a household received (发放到户): each payment net of what came back,
    the receipts it came from, and who signed the payment and each allocation."""
    return chains.household_money(db, str(household.id))


# responsibility chains ------------------------------------------------------------------------
@router.get("/chains/events/{log_position}", response_model=SignedStep)
def event_chain(request: Request, reader: Reader, app: App, db: ReadModels,
                log_position: Annotated[int, Path(ge=1, le=2**62, description=(
                    "the event's position in the log (notification id)"))]) -> Any:
    """Who signed the event at a log position, in role order, with the position each
    signed under and the key used.  The subject is the event's household, account or
    project."""
    chain = chains.event_chain(db, log_position)
    subject = subject_of(app, any_aggregate(app, chain["originator_id"], "log_position"))
    check_covers(reader, subject.region_path, f"the event at log position {log_position}",
                 "log_position")
    record_reads(request, reader, [subject])
    return chain


@router.get("/households/{household_id}/chain", response_model=HouseholdChainOut)
def household_chain(household: Annotated[Household, Depends(household_by_id)],
                    db: ReadModels) -> Any:
    """A household's status and every signed step of its procedures (识别, 退出, 清退,
    返贫), with who signed each and the status after it."""
    return chains.household_chain(db, str(household.id))


@router.get("/chains/payments/{movement_id}", response_model=PaymentChainOut)
def payment_chain(request: Request, reader: Reader, app: App, db: ReadModels,
                  movement_id: MovementId, account_id: AccountFilter = None) -> Any:
    """A payment's whole chain (谁签字谁负责): the receipts and allocations that funded
    it, the payment, the payee household's registration, later recoveries and
    reversals — each with its signers."""
    account = movement_account(db, reader, app, movement_id, account_id, ("disbursed",),
                               "payment")
    chain = chains.payment_chain(db, movement_id, account)
    payee = chain["payee"] or {}
    record_households(request, reader, app, [payee.get("household_id")],
                      account_read(app, account))
    return chain


@router.get("/officials/{official_id}/liability", response_model=LiabilityOut)
def official_liability(
        request: Request, reader: Reader, app: App, db: ReadModels, official_id: UUID,
        date_from: Annotated[IsoDate | None, Query(
            alias="from", examples=["2025-01-01"],
            description="first business date signed (inclusive)")] = None,
        date_to: Annotated[IsoDate | None, Query(
            alias="to", examples=["2025-12-31"],
            description="last business date signed (inclusive)")] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="cut each list at this many "
                                    "items")] = 50) -> Any:
    """What an official signed over a period (谁签字谁负责) and what later became of it
    (谁签字谁追回): households removed, exits relapsed, payments reversed or recovered,
    payments to removed households still to recover, red flags standing on what they
    signed.  The subject is the official's region."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidInput(f"is before from ({date_from.isoformat()})", field="to")
    official = app.load(Official, official_id, "official_id")
    subject = subject_of(app, official)
    check_covers(reader, subject.region_path, f"official {official.code}", "official_id")
    found = chains.official_liability(db, str(official_id), date_from=date_from,
                                      date_to=date_to, limit=limit)
    later = found["later"]
    shown = [*found["households_approved"]["items"], *found["exits_approved"]["items"],
             *[item for name, part in later.items() if name != "flagged"
               for item in part["items"]]]
    record_households(request, reader, app, [i.get("household_id") for i in shown], subject)
    return found
