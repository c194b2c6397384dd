"""An official's own key and signature: made and used on the official's machine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cli.adapter import UserError, fail, print_json, read_json, run, settings
from projections.aggregates import creation_subject
from store.settings import Settings
from domain.identity import hash_bank_account, hash_id_number
from domain.signing import Role, SigningKey, b64, canonical_json, unb64

app = typer.Typer()


@app.command()
def keygen(out: Annotated[Path, typer.Option("--out", help="private key file to create")]) -> None:
    """Create an Ed25519 signing key in a new file (mode 0600); print its public half."""
    key = SigningKey.generate()
    body = {"algorithm": "Ed25519", "key_id": key.key_id,
            "public_key": b64(key.public_bytes), "private_key": b64(key.private_bytes())}
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{out} exists; a key file is never overwritten")
    except OSError as exc:
        fail(f"cannot create {out}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)
        f.write("\n")
    typer.echo(f"public_key: {body['public_key']}\nkey_id: {key.key_id}")


def load_key(path: Path) -> SigningKey:
    data = read_json(str(path))
    if not isinstance(data, dict) or not isinstance(data.get("private_key"), str):
        raise UserError(f"{path} is not a zhuisu key file (no private_key)")
    if path.stat().st_mode & 0o077:
        typer.echo(f"warning: {path} is readable by others; chmod 600 it", err=True)
    try:
        return SigningKey(Ed25519PrivateKey.from_private_bytes(
            unb64(data["private_key"], "private_key")))
    except ValueError as exc:
        raise UserError(f"{path}: the private key is not a 32-byte Ed25519 key") from exc


def _pepper(s: Settings) -> bytes:
    path = s.id_pepper_file
    if not path.exists():
        raise UserError(f"no ID pepper at {path}; set ZHUISU_ID_PEPPER_FILE to the "
                        "deployment's pepper so hashes match the register")
    return s.id_pepper()


def hash_members(content: dict[str, Any], s: Settings) -> bool:
    """Replace clear ID numbers in ``members`` (and a clear ``bank_account``) by their
    keyed hash; True if any was."""
    members = content.get("members")
    changed = False
    for i, member in enumerate(members if isinstance(members, list) else []):
        if isinstance(member, dict) and "id_number" in member:
            number = member.pop("id_number")
            member["id_number_hash"] = hash_id_number(str(number), _pepper(s),
                                                      f"content.members[{i}].id_number")
            changed = True
    if "bank_account" in content:
        number = content.pop("bank_account")
        content["bank_account_hash"] = hash_bank_account(str(number), _pepper(s),
                                                         "content.bank_account")
        changed = True
    return changed


def sign_envelope(command: Any, key: SigningKey, official: str, role: Role,
                  s: Settings) -> dict[str, Any]:
    if not isinstance(command, dict) or not isinstance(command.get("step"), str):
        raise UserError("the command must be a JSON object with step, content (and subject)")
    content = command.get("content")
    if not isinstance(content, dict):
        raise UserError("the command needs a content object")
    try:
        official_id = str(UUID(official))
    except ValueError as exc:
        raise UserError(f"--official must be the official's UUID, not {official!r}") from exc
    signatures = command.get("signatures") or []
    if not isinstance(signatures, list) or not all(isinstance(x, dict) for x in signatures):
        raise UserError("signatures must be a list of objects")
    if hash_members(content, s) and signatures:
        raise UserError("ID numbers were hashed after others signed; their signatures would "
                        "no longer verify: sign the hashed command again from the start")
    subject = command.get("subject")
    derived = creation_subject(command["step"], content)  # a creation step's: from its code
    if derived is not None and subject and str(subject) != derived:
        raise UserError(f"the subject of this {command['step']} is {derived}, derived from "
                        f"its code (zhuisu id); not {subject}")
    subject = subject or derived
    if not subject:
        raise UserError(f"{command['step']} needs the subject (the aggregate's UUID)")
    canonical_json(content)  # refuses floats before anything is signed
    signature = key.sign_step(command["step"], subject, content, official_id, role)
    kept = [x for x in signatures  # signing again replaces one's own earlier signature
            if not (x.get("official_id") == official_id and x.get("role") == role.value)]
    return {"step": command["step"], "subject": str(subject), "content": content,
            "signatures": [*kept, signature.as_dict()]}


@app.command()
def sign(
    key: Annotated[Path, typer.Option("--key", help="private key file (zhuisu keygen)")],
    official: Annotated[str, typer.Option("--official", help="your official UUID")],
    role: Annotated[Role, typer.Option("--role", help="the role you sign in")],
    command_json: Annotated[str | None, typer.Argument(
        help="command file ('-' for stdin); or --draft")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write here, not stdout")] = None,
    draft: Annotated[str | None, typer.Option("--draft", help="sign a draft of the signing "
                                              "queue (签字队列) instead: cli/drafts.py")] = None,
) -> None:
    """Add your signature over the command's canonical content.

    A creation step (Household.Applied, Project.Approved) may come without a subject: it
    is the id derived from the code in its content (zhuisu id, GET /ids/{kind}/{code}).
    Clear ID numbers in content.members[*].id_number (and a clear content.bank_account)
    are first replaced by their keyed hash (the deployment's ID pepper), so no ID number is ever signed or sent.
    """
    if (draft is None) == (command_json is None):
        fail("give a command file or --draft ID (not both)")
    if draft is not None:
        from cli.drafts import sign_draft

        return sign_draft(draft, run(lambda: load_key(key)), official, role)
    s = settings()
    signed = run(lambda: sign_envelope(read_json(str(command_json)), load_key(key), official,
                                       role, s))
    run(lambda: print_json(signed, out))
