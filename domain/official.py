"""Officials (干部): positions held over a period, signing keys, declared relatives."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import AlreadyExists, InvalidInput, NotFound
from domain.positions import POSITIONS, ResponsibilityKind
from domain.region import Region, stable_id
from domain.signing import key_id_of, unb64


@dataclass
class Position:
    kind: str
    region_code: str
    responsibility: str
    start: dt.date
    end: dt.date | None = None  # exclusive

    def held_on(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass
class Key:
    key_id: str
    public_key: bytes
    valid_from: dt.date
    valid_until: dt.date | None = None  # exclusive; set by rotation or revocation
    revoked_recorded_at: dt.datetime | None = None

    def usable(self, day: dt.date, now: dt.datetime) -> bool:
        if self.revoked_recorded_at is not None and now >= self.revoked_recorded_at:
            return False  # a revoked key signs nothing recorded after its revocation
        return self.valid_from <= day and (self.valid_until is None or day < self.valid_until)


class Official(Aggregate):
    """A cadre (干部) who signs steps and answers for them (谁签字谁负责)."""

    @staticmethod
    def create_id(code: str, **_: object) -> UUID:
        return stable_id("official", code)

    @event("Registered")
    def __init__(self, code: str, name: str, unit_code: str, region_code: str,
                 id_number_hash: str) -> None:
        self.code = code
        self.name = name
        self.unit_code = unit_code
        self.region_code = region_code
        self.id_number_hash = id_number_hash
        self.positions: list[Position] = []
        self.keys: dict[str, Key] = {}
        self.relatives: dict[str, str] = {}  # id_number_hash → relation

    # positions ---------------------------------------------------------------
    def take_position(self, kind: str, region: Region, start: dt.date,
                      responsibility: str | None = None) -> None:
        spec = POSITIONS.get(kind)
        if spec is None:
            raise InvalidInput(f"unknown position; one of {sorted(POSITIONS)}", field="kind")
        if region.level is not spec.level:
            raise InvalidInput(
                f"{kind} ({spec.title}) is held at {spec.level.value} level, "
                f"but {region.code} is a {region.level.value}", field="region_code")
        responsibility = responsibility or spec.responsibility.value
        try:
            ResponsibilityKind(responsibility)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[r.value for r in ResponsibilityKind]}",
                               field="responsibility") from exc
        if any(p.kind == kind and p.region_code == region.code and p.end is None
               for p in self.positions):
            raise AlreadyExists(f"already holds {kind} at {region.code}", field="kind")
        self._position_taken(kind=kind, region_code=region.code,
                             responsibility=responsibility, start=start)

    @event("PositionTaken")
    def _position_taken(self, kind: str, region_code: str, responsibility: str,
                        start: dt.date) -> None:
        self.positions.append(Position(kind, region_code, responsibility, start))

    def leave_position(self, kind: str, region_code: str, end: dt.date) -> None:
        for p in self.positions:
            if p.kind == kind and p.region_code == region_code and p.end is None:
                if end <= p.start:
                    raise InvalidInput("must be after the position's start", field="end")
                self._position_left(kind=kind, region_code=region_code, end=end)
                return
        raise NotFound(f"holds no open {kind} position at {region_code}", field="kind")

    @event("PositionLeft")
    def _position_left(self, kind: str, region_code: str, end: dt.date) -> None:
        for p in self.positions:
            if p.kind == kind and p.region_code == region_code and p.end is None:
                p.end = end

    def positions_on(self, day: dt.date) -> list[Position]:
        return [p for p in self.positions if p.held_on(day)]

    # keys --------------------------------------------------------------------
    def register_key(self, public_key_b64: str, valid_from: dt.date) -> str:
        public_key = unb64(public_key_b64, "public_key")
        key_id = key_id_of(public_key)
        if key_id in self.keys:
            raise AlreadyExists(f"key {key_id} is already registered", field="public_key")
        self._key_registered(key_id=key_id, public_key=public_key_b64, valid_from=valid_from)
        return key_id

    @event("KeyRegistered")
    def _key_registered(self, key_id: str, public_key: str, valid_from: dt.date) -> None:
        self.keys[key_id] = Key(key_id, unb64(public_key, "public_key"), valid_from)

    def rotate_key(self, old_key_id: str, new_public_key_b64: str, effective: dt.date) -> str:
        old = self._open_key(old_key_id, "old_key_id")
        if effective <= old.valid_from:
            raise InvalidInput("rotation must come after the old key's start", field="effective_date")
        public_key = unb64(new_public_key_b64, "public_key")
        key_id = key_id_of(public_key)
        if key_id in self.keys:
            raise AlreadyExists(f"key {key_id} is already registered", field="public_key")
        self._key_rotated(old_key_id=old_key_id, key_id=key_id,
                          public_key=new_public_key_b64, effective_date=effective)
        return key_id

    @event("KeyRotated")
    def _key_rotated(self, old_key_id: str, key_id: str, public_key: str,
                     effective_date: dt.date) -> None:
        self.keys[old_key_id].valid_until = effective_date
        self.keys[key_id] = Key(key_id, unb64(public_key, "public_key"), effective_date)

    def revoke_key(self, key_id: str, effective: dt.date, reason: str, now: dt.datetime) -> None:
        key = self.keys.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id}", field="key_id")
        if key.revoked_recorded_at is not None:
            raise AlreadyExists(f"key {key_id} is already revoked", field="key_id")
        if not reason:
            raise InvalidInput("a revocation needs a reason", field="reason")
        self._key_revoked(key_id=key_id, effective_date=effective, reason=reason, recorded_at=now)

    @event("KeyRevoked")
    def _key_revoked(self, key_id: str, effective_date: dt.date, reason: str,
                     recorded_at: dt.datetime) -> None:
        key = self.keys[key_id]
        if key.valid_until is None or effective_date < key.valid_until:
            key.valid_until = effective_date
        key.revoked_recorded_at = recorded_at

    def _open_key(self, key_id: str, field: str) -> Key:
        key = self.keys.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id}", field=field)
        if key.valid_until is not None or key.revoked_recorded_at is not None:
            raise InvalidInput(f"key {key_id} is already rotated or revoked", field=field)
        return key

    # relatives ---------------------------------------------------------------
    def declare_relative(self, id_number_hash: str, relation: str) -> None:
        if not relation:
            raise InvalidInput("must name the relation (e.g. spouse, child)", field="relation")
        if self.relatives.get(id_number_hash) == relation:
            return
        self._relative_declared(id_number_hash=id_number_hash, relation=relation)

    @event("RelativeDeclared")
    def _relative_declared(self, id_number_hash: str, relation: str) -> None:
        self.relatives[id_number_hash] = relation
