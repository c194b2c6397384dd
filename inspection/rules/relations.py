"""Relation rules (优亲厚友): officials who sign for their relatives, or for each other.

=================================  ==================================
``PAYEE_RELATIVE_OF_SIGNER``       优亲厚友：收款户成员是签字干部的亲属
``SIGNERS_RELATED``                经办人与审批人为同一人或互为亲属
``APPROVER_RELATED_TO_HOUSEHOLD``  优亲厚友：识别签字干部是该户成员的亲属
``BANK_ACCOUNT_SHARED``            多户共用同一银行账户
=================================  ==================================

A relative is someone an official declared (``Official.RelativeDeclared``: an ID-number
hash and a relation); a household's members are known by the same hash.  The first three
rules look for a declared relative among the people on the other side of a signature
(``relative_among``, ``declared_relation``), whichever of the signature and the
declaration comes first in the log.  ``BANK_ACCOUNT_SHARED``: a household applies with the
hashed bank account another household applied with (the later one is flagged).  Kept up to
date by ``projections.flags.relations``, which holds officials' ID hashes and relatives,
households' members, identification signers and bank accounts, and the preparer/approver
pair of every signed step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def relative_among(relatives: Mapping[str, str],
                   members: Iterable[Sequence[str]]) -> tuple[str, str] | None:
    """The first of a household's ``[id hash, name]`` members (in application order) whom an
    official declared a relative (``relatives``: id hash → relation): ``(name, relation)``,
    or None."""
    for id_hash, name in members:
        relation = relatives.get(id_hash)
        if relation is not None:
            return name, relation
    return None


def identification_signers(signatures: Iterable[Mapping[str, Any]]) -> list[str]:
    """The officials who sign a household identification step for
    ``APPROVER_RELATED_TO_HOUSEHOLD``: every signer but a witness, in signing order."""
    return [s["official_id"] for s in signatures if s["role"] != "witness"]


def preparer_and_approver(signatures: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The two signers ``SIGNERS_RELATED`` compares (not the reviewer), or None unless the
    step has both."""
    by_role = {s["role"]: s["official_id"] for s in signatures}
    preparer, approver = by_role.get("preparer"), by_role.get("approver")
    if preparer is None or approver is None:
        return None
    return preparer, approver


def declared_relation(preparer: Sequence[Any],
                      approver: Sequence[Any]) -> tuple[str, str] | None:
    """Did one of two officials declare the other a relative?  Each is ``(official id,
    id hash, {id hash: relation})``; returns ``(who declared, relation)``, the preparer's
    declaration first, or None."""
    preparer_id, preparer_hash, preparer_relatives = preparer
    approver_id, approver_hash, approver_relatives = approver
    if approver_hash in preparer_relatives:
        return preparer_id, preparer_relatives[approver_hash]
    if preparer_hash in approver_relatives:
        return approver_id, approver_relatives[preparer_hash]
    return None


def signers_wording(how: str, relation: str | None) -> dict[str, str]:
    """How preparer and approver are related, for ``SIGNERS_RELATED``'s explanation:
    ``how`` is 'same' (one official) or 'related' (a declared ``relation``)."""
    return {"how": "为同一人" if how == "same" else f"互为亲属（{relation}）",
            "how_en": "are the same official" if how == "same"
            else f"are related ({relation})"}
