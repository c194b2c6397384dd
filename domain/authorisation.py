"""Checking the signatures on a step (谁签字谁负责).

A step is accepted only if every role its rule names is signed exactly once, by distinct
officials (so preparer ≠ approver), each signature verifies against a key the official
held on the step's business date (and not revoked before the step was recorded), and
each signer then held, at one of the rule's levels for the role, a position the rule
names for it (``StepRule.positions``, the list ``GET /steps`` shows) in the region of the
step's region path at that level.  What is stored with the event is the signature plus
the position it was signed under, so the responsibility chain needs no later lookup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from domain.errors import (
    InvalidInput,
    MissingSignature,
    SeparationOfDuties,
    SignatureInvalid,
    SignerNotAuthorised,
)
from domain.official import Official
from domain.positions import StepRule
from domain.region import RegionPath
from domain.signing import Role, Signature, canonical_json, step_message, verify_signature

Verifier = Callable[[bytes, str, bytes], bool]
"""(public key, base64 signature, message) → verifies?"""


def parse_signatures(raw: Sequence[Mapping[str, Any] | Signature]) -> list[Signature]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise MissingSignature("a signed step needs a non-empty list of signatures",
                               field="signatures")
    return [s if isinstance(s, Signature) else Signature.from_dict(s, i) for i, s in enumerate(raw)]


def authorise(
    *,
    step: str,
    subject: UUID,
    content: Mapping[str, Any] | bytes,
    signatures: Sequence[Signature],
    rule: StepRule,
    region_path: RegionPath,
    day: dt.date,
    now: dt.datetime,
    officials: Mapping[str, Official],
    verify: Verifier = verify_signature,
) -> list[dict[str, str]]:
    by_role: dict[Role, Signature] = {}
    for i, sig in enumerate(signatures):
        if sig.role not in rule.roles:
            raise InvalidInput(
                f"{step} is signed by {', '.join(r.value for r in rule.roles)}; "
                f"not by a {sig.role.value}", field=f"signatures[{i}].role")
        if sig.role in by_role:
            raise InvalidInput(f"two {sig.role.value} signatures", field=f"signatures[{i}].role")
        by_role[sig.role] = sig
    for role in rule.roles:
        if role not in by_role:
            raise MissingSignature(f"{step} needs a {role.value} signature", field="signatures",
                                   role=role.value)
    preparer, approver = by_role.get(Role.PREPARER), by_role.get(Role.APPROVER)
    if preparer and approver and preparer.official_id == approver.official_id:
        raise SeparationOfDuties(
            f"preparer (经办) and approver (审批) are the same official {preparer.official_id}",
            field="signatures", official_id=preparer.official_id)
    signers = [s.official_id for s in by_role.values()]
    if len(set(signers)) != len(signers):
        raise SeparationOfDuties("one official may sign a step in one role only",
                                 field="signatures")

    accepted = []
    # encoded once for every signer (callers may pass it already encoded)
    content_json = content if isinstance(content, bytes) else canonical_json(content)
    for i, (role, sig) in enumerate(by_role.items()):
        field = f"signatures[{i}]"
        official = officials.get(sig.official_id)
        if official is None:
            raise SignerNotAuthorised(f"no official {sig.official_id}", field=f"{field}.official_id")
        key = official.keys.get(sig.key_id)
        if key is None:
            raise SignatureInvalid(f"official {official.code} has no key {sig.key_id}",
                                   field=f"{field}.key_id")
        if not key.usable(day, now):
            raise SignatureInvalid(
                f"key {sig.key_id} of official {official.code} was not valid on {day.isoformat()}"
                " (not yet registered, rotated or revoked)", field=f"{field}.key_id")
        message = step_message(step, subject, content_json, sig.official_id, role.value,
                               sig.key_id)
        if not verify(key.public_key, sig.signature, message):
            raise SignatureInvalid(
                f"{role.value} signature of official {official.code} does not verify over "
                f"the canonical content of {step}", field=f"{field}.signature")
        position, where = _position(official, rule, role, region_path, day)
        if position is None:
            raise SignerNotAuthorised(
                f"official {official.code} held no position at {where} on {day.isoformat()} "
                f"that may sign {step} as {role.value}",
                field=f"{field}.official_id", role=role.value)
        accepted.append({
            **sig.as_dict(),
            "position": position.kind,
            "position_region": position.region_code,
            "responsibility": position.responsibility,
        })
    return accepted


def _position(official: Official, rule: StepRule, role: Role, region_path: RegionPath,
              day: dt.date) -> tuple[Any, str]:
    """The position, held on ``day``, under which ``official`` may sign ``role``: one of
    ``rule.positions(role, level)`` held at the region of ``region_path`` at that level, the
    rule's levels tried in order.  Also where that was looked for, for the refusal."""
    held = official.positions_on(day)
    places = []
    for level in rule.levels(role):
        region_code = region_path.get(level.value)
        if region_code is None:
            continue
        places.append(f"{level.value} {region_code}")
        allowed = rule.positions(role, level)
        for p in held:
            if p.region_code == region_code and p.kind in allowed:
                return p, ""
    return None, " or ".join(places) or f"{rule.roles[role].value} level"
