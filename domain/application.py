"""The application service: verbs that load aggregates, call one domain method, save.

``Zhuisu.execute`` takes a signed command envelope::

    {"step": "FundAccount.Disbursed", "subject": "<aggregate uuid>",
     "content": {...the step's fields...}, "signatures": [{official_id, role, key_id, signature}]}

``content`` is exactly what each signer signed (``domain.signing``).  Administrative verbs
(regions, units, officials and their keys, opening accounts) are not signed steps; the API
restricts them to administrators.  Record time comes from the injected clock, so nothing
here reads the system clock itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.authorisation import Verifier, authorise, parse_signatures
from domain.errors import AlreadyExists, InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.identity import hash_id_number
from domain.official import Official
from domain.project import Project
from domain.region import Region, RegionLevel, Unit
from domain.signed import Authoriser
from domain.signing import verify_signature

A = TypeVar("A", bound=Aggregate)


class DateAsISO(Transcoding):
    type = dt.date
    name = "date_iso"

    def encode(self, obj: dt.date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> dt.date:
        return dt.date.fromisoformat(data)


def parse_date(value: object, field: str = "effective_date") -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput("must be a date YYYY-MM-DD", field=field)


# step → (aggregate class, method name, created by the step?)
STEPS: dict[str, tuple[type[Aggregate], str]] = {
    "Household.Applied": (Household, "apply_for_registration"),
    "Household.AppraisedByVillage": (Household, "appraise"),
    "Household.VerifiedByVillage": (Household, "verify"),
    "Household.NoticePosted": (Household, "post_notice"),
    "Household.ObjectionRaised": (Household, "raise_objection"),
    "Household.ObjectionResolved": (Household, "resolve_objection"),
    "Household.ReviewedByTownship": (Household, "review_by_township"),
    "Household.ApprovedByCounty": (Household, "approve_by_county"),
    "Household.HelperAssigned": (Household, "assign_helper"),
    "Household.AnnualReviewRecorded": (Household, "record_annual_review"),
    "Household.ExitProposed": (Household, "propose_exit"),
    "Household.ExitAppraised": (Household, "appraise_exit"),
    "Household.ExitConfirmedByHousehold": (Household, "confirm_exit_by_household"),
    "Household.ExitVerifiedByTownship": (Household, "verify_exit_by_township"),
    "Household.ExitApprovedByCounty": (Household, "approve_exit_by_county"),
    "Household.RemovedFromRegister": (Household, "remove"),
    "Household.Relapsed": (Household, "relapse"),
    "Project.Approved": (Project, "approve"),
    "Project.BeneficiaryAdded": (Project, "add_beneficiary"),
    "Project.AcceptedOnCompletion": (Project, "accept_on_completion"),
    "FundAccount.Received": (FundAccount, "receive"),
    "FundAccount.Allocated": (FundAccount, "allocate"),
    "FundAccount.Disbursed": (FundAccount, "disburse"),
    "FundAccount.Recovered": (FundAccount, "recover"),
    "FundAccount.Reversed": (FundAccount, "reverse"),
}
CREATION_STEPS = {"Household.Applied", "Project.Approved"}
DATE_FIELDS = {"effective_date"}
# Fields of a method that the service supplies, never the client.
SERVICE_ARGS = {"authorise", "region_path", "household", "project", "to", "counterpart"}
# Fields the client names and the service resolves into an aggregate (the signed content
# still carries the id): the account an allocation goes to.
RESOLVED_FIELDS = {"FundAccount.Allocated": {"to_account_id"}}


@functools.cache
def step_fields(step: str) -> frozenset[str]:
    cls, method = STEPS[step]
    params = inspect.signature(getattr(cls, method)).parameters
    return frozenset({n for n in params if n not in SERVICE_ARGS | {"self", "cls"}}
                     | RESOLVED_FIELDS.get(step, set()))


class Zhuisu(Application):
    """追溯: one event store, one notification log, every aggregate of the domain."""

    name = "zhuisu"
    snapshotting_intervals = {FundAccount: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *, id_pepper: bytes = b"",
                 clock: Callable[[], dt.datetime] | None = None,
                 verifier: Verifier = verify_signature) -> None:
        super().__init__(env)
        if clock is None:
            raise InvalidInput("the application needs a clock for record time", field="clock")
        self.id_pepper = id_pepper
        self.clock = clock
        self.verifier = verifier
        # The open batch of this thread / task, if any (see ``batch``).
        self._batch_var: ContextVar[dict[UUID, Aggregate] | None] = ContextVar(
            f"zhuisu-batch-{id(self)}", default=None)

    @property
    def _batch(self) -> dict[UUID, Aggregate] | None:
        return self._batch_var.get()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # loading and saving -----------------------------------------------------------
    def load(self, cls: type[A], aggregate_id: UUID | str, field: str = "subject") -> A:
        try:
            aid = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
        except ValueError as exc:
            raise InvalidInput("must be a UUID", field=field) from exc
        if self._batch is not None and aid in self._batch:
            agg = self._batch[aid]
        else:
            try:
                agg = self.repository.get(aid)
            except AggregateNotFoundError as exc:
                raise NotFound(f"no {cls.__name__} {aid}", field=field) from exc
            if self._batch is not None:
                self._batch[aid] = agg
        if not isinstance(agg, cls):
            raise NotFound(f"{aid} is a {type(agg).__name__}, not a {cls.__name__}", field=field)
        return agg

    def exists(self, aggregate_id: UUID) -> bool:
        if self._batch is not None and aggregate_id in self._batch:
            return True
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _commit(self, *aggregates: Aggregate | None) -> None:
        if self._batch is not None:
            for agg in aggregates:
                if agg is not None:
                    self._batch[agg.id] = agg
        else:
            self.save(*aggregates)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run many commands and store all their events in one transaction (bulk loads).

        Every command still passes every check; a refused command changes nothing, so the
        batch holds only accepted steps.
        """
        batch: dict[UUID, Aggregate] = {}
        token = self._batch_var.set(batch)
        try:
            yield
            self.save(*batch.values())
        finally:
            self._batch_var.reset(token)

    # administration (unsigned; restricted by the API) -------------------------------
    def create_region(self, code: str, name: str, level: str, parent_code: str | None,
                      population: int | None = None) -> UUID:
        try:
            lvl = RegionLevel(level)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[lv.value for lv in RegionLevel]}",
                               field="level") from exc
        parent = self.region(parent_code, "parent_code") if parent_code else None
        if self.exists(Region.create_id(code)):
            raise AlreadyExists(f"region {code} exists", field="code")
        region = Region.create(code, name, lvl, parent, population)
        self._commit(region)
        return region.id

    def region(self, code: str, field: str = "region_code") -> Region:
        return self.load(Region, Region.create_id(code), field)

    def establish_unit(self, code: str, name: str, kind: str, region_code: str) -> UUID:
        if self.exists(Unit.create_id(code)):
            raise AlreadyExists(f"unit {code} exists", field="code")
        unit = Unit.establish(code, name, kind, self.region(region_code))
        self._commit(unit)
        return unit.id

    def register_official(self, code: str, name: str, unit_code: str, id_number: str) -> UUID:
        unit = self.load(Unit, Unit.create_id(unit_code), "unit_code")
        if self.exists(Official.create_id(code)):
            raise AlreadyExists(f"official {code} exists", field="code")
        if not name:
            raise InvalidInput("must not be empty", field="name")
        official = Official(code=code, name=name, unit_code=unit.code, region_code=unit.region_code,
                            id_number_hash=hash_id_number(id_number, self.id_pepper))
        self._commit(official)
        return official.id

    def official(self, code: str, field: str = "official_code") -> Official:
        return self.load(Official, Official.create_id(code), field)

    def take_position(self, official_code: str, kind: str, region_code: str, start: dt.date,
                      responsibility: str | None = None) -> None:
        official = self.official(official_code)
        official.take_position(kind, self.region(region_code), parse_date(start, "start"),
                               responsibility)
        self._commit(official)

    def leave_position(self, official_code: str, kind: str, region_code: str, end: dt.date) -> None:
        official = self.official(official_code)
        official.leave_position(kind, region_code, parse_date(end, "end"))
        self._commit(official)

    def register_key(self, official_code: str, public_key_b64: str, valid_from: dt.date) -> str:
        official = self.official(official_code)
        key_id = official.register_key(public_key_b64, parse_date(valid_from, "valid_from"))
        self._commit(official)
        return key_id

    def rotate_key(self, official_code: str, old_key_id: str, public_key_b64: str,
                   effective_date: dt.date) -> str:
        official = self.official(official_code)
        key_id = official.rotate_key(old_key_id, public_key_b64, parse_date(effective_date))
        self._commit(official)
        return key_id

    def revoke_key(self, official_code: str, key_id: str, effective_date: dt.date,
                   reason: str) -> None:
        official = self.official(official_code)
        official.revoke_key(key_id, parse_date(effective_date), reason, self.clock())
        self._commit(official)

    def declare_relative(self, official_code: str, id_number: str, relation: str) -> None:
        official = self.official(official_code)
        official.declare_relative(hash_id_number(id_number, self.id_pepper), relation)
        self._commit(official)

    def open_account(self, region_code: str, fund_source: str, name: str = "") -> UUID:
        region = self.region(region_code)
        if self.exists(FundAccount.create_id(region_code, fund_source)):
            raise AlreadyExists(f"account {region_code}/{fund_source} exists", field="fund_source")
        account = FundAccount.open(region_code=region.code, level=region.level,
                                   region_path=region.path, fund_source=fund_source, name=name)
        self._commit(account)
        return account.id

    def hash_id(self, id_number: str, field: str = "id_number") -> str:
        return hash_id_number(id_number, self.id_pepper, field)

    # signed steps -----------------------------------------------------------------
    def authoriser(self, signatures: Any) -> Authoriser:
        sigs = parse_signatures(signatures)
        officials: dict[str, Official] = {}
        for i, s in enumerate(sigs):
            try:
                officials[s.official_id] = self.load(Official, s.official_id,
                                                     f"signatures[{i}].official_id")
            except NotFound:
                continue  # reported by authorise() as an unknown signer
        now = self.clock()

        def check(**kw: Any) -> list[dict]:
            return authorise(signatures=sigs, now=now, officials=officials,
                             verify=self.verifier, **kw)

        return check

    def execute(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Run one signed step.  Returns the subject id and whether anything new was stored."""
        step = command.get("step")
        if step not in STEPS:
            raise InvalidInput(f"unknown step; one of {sorted(STEPS)}", field="step")
        content = command.get("content")
        if not isinstance(content, Mapping):
            raise InvalidInput("must be an object with the step's fields", field="content")
        allowed = step_fields(step)
        extra = sorted(set(content) - allowed)
        if extra:
            raise InvalidInput(f"{step} has no field {extra[0]}; its fields are {sorted(allowed)}",
                               field=f"content.{extra[0]}")
        missing = sorted(f for f in allowed - set(content))
        if missing:
            raise InvalidInput(f"{step} needs {missing[0]}", field=f"content.{missing[0]}")
        kwargs = {k: (parse_date(v, k) if k in DATE_FIELDS else v) for k, v in content.items()}
        authorise = self.authoriser(command.get("signatures"))
        handler = getattr(self, "_" + step.replace(".", "_").lower(), self._step_on_existing)
        subject, recorded = handler(step, command.get("subject"), kwargs, authorise)
        return {"step": step, "subject": str(subject), "recorded": recorded}

    def _step_on_existing(self, step: str, subject: Any, kwargs: dict[str, Any],
                          authorise: Authoriser) -> tuple[UUID, bool]:
        cls, method = STEPS[step]
        agg = self.load(cls, subject)
        version = agg.version
        getattr(agg, method)(**kwargs, authorise=authorise)
        self._commit(agg)
        return agg.id, agg.version != version

    def _household_applied(self, step: str, subject: Any, kw: dict[str, Any],
                           authorise: Authoriser) -> tuple[UUID, bool]:
        hid = Household.create_id(str(kw.get("household_code")))
        self._check_subject(subject, hid)
        village = self.region(str(kw.get("village_code")), "content.village_code")
        if village.level is not RegionLevel.VILLAGE:
            raise InvalidInput(f"{village.code} is a {village.level.value}, not a village",
                               field="content.village_code")
        if self.exists(hid):
            existing = self.load(Household, hid)
            if existing.already_accepted(step, {**kw}):
                return hid, False
            raise AlreadyExists(f"household {kw['household_code']} has already applied",
                                field="content.household_code")
        household = Household.apply_for_registration(**kw, region_path=village.path,
                                                     authorise=authorise)
        self._commit(household)
        return hid, True

    def _project_approved(self, step: str, subject: Any, kw: dict[str, Any],
                          authorise: Authoriser) -> tuple[UUID, bool]:
        pid = Project.create_id(str(kw.get("project_code")))
        self._check_subject(subject, pid)
        region = self.region(str(kw.get("region_code")), "content.region_code")
        if region.level not in (RegionLevel.VILLAGE, RegionLevel.TOWNSHIP, RegionLevel.COUNTY):
            raise InvalidInput("projects are located in a county, township or village",
                               field="content.region_code")
        if self.exists(pid):
            if self.load(Project, pid).already_accepted(step, kw):
                return pid, False
            raise AlreadyExists(f"project {kw['project_code']} exists", field="content.project_code")
        for i, h in enumerate(kw.get("beneficiary_household_ids") or []):
            self.load(Household, h, f"content.beneficiary_household_ids[{i}]")
        project = Project.approve(**kw, region_path=region.path, authorise=authorise)
        self._commit(project)
        return pid, True

    @staticmethod
    def _check_subject(subject: Any, expected: UUID) -> None:
        if subject not in (None, "", str(expected), expected):
            raise InvalidInput(f"the subject of this creation step is {expected}", field="subject")

    def _household_helperassigned(self, step: str, subject: Any, kw: dict[str, Any],
                                  authorise: Authoriser) -> tuple[UUID, bool]:
        self.load(Official, kw.get("official_id"), "content.official_id")
        return self._step_on_existing(step, subject, kw, authorise)

    def _project_beneficiaryadded(self, step: str, subject: Any, kw: dict[str, Any],
                                  authorise: Authoriser) -> tuple[UUID, bool]:
        """A beneficiary is a known household, as at approval."""
        self.load(Household, kw.get("household_id"), "content.household_id")
        return self._step_on_existing(step, subject, kw, authorise)

    def _fundaccount_allocated(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        to = self.load(FundAccount, kw["to_account_id"], "content.to_account_id")
        version = account.version
        account.allocate(**{k: v for k, v in kw.items() if k != "to_account_id"}, to=to,
                         authorise=authorise)
        self._commit(account, to)
        return account.id, account.version != version

    def _fundaccount_disbursed(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        household = project = None
        if kw.get("payee_kind") == "household":
            household = self.load(Household, kw.get("payee_id"), "content.payee_id")
        elif kw.get("payee_kind") == "project":
            project = self.load(Project, kw.get("payee_id"), "content.payee_id")
        elif kw.get("payee_kind") == "supplier" and kw.get("project_id"):
            project = self.load(Project, kw["project_id"], "content.project_id")
        version = account.version
        account.disburse(**kw, household=household, project=project, authorise=authorise)
        self._commit(account, project)
        return account.id, account.version != version

    def _fundaccount_recovered(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        project = self._project_of(account, kw.get("of_movement_id"))
        version = account.version
        account.recover(**kw, project=project, authorise=authorise)
        self._commit(account, project)
        return account.id, account.version != version

    def _fundaccount_reversed(self, step: str, subject: Any, kw: dict[str, Any],
                              authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        original = account.movements.get(str(kw.get("of_movement_id")), {})
        counterpart = None
        if original.get("kind") == "allocated":
            counterpart = self.load(FundAccount, original["counterparty"])
        project = self._project_of(account, kw.get("of_movement_id"))
        version = account.version
        account.reverse(**kw, counterpart=counterpart, project=project, authorise=authorise)
        self._commit(account, counterpart, project)
        return account.id, account.version != version

    def _project_of(self, account: FundAccount, movement_id: Any) -> Project | None:
        pid = account.project_of(str(movement_id))
        return self.load(Project, pid) if pid else None

    # reads ---------------------------------------------------------------------------
    def stored_events(self, aggregate_id: UUID, after: int = 0,
                      limit: int | None = None) -> list[Any]:
        """An aggregate's events in version order, ``after`` a version, at most ``limit``."""
        return list(self.events.get(aggregate_id, gt=after or None, limit=limit))
