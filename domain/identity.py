"""Resident identity numbers (公民身份号码): validated, then kept only as a keyed hash.

The hash is HMAC-SHA256 under a deployment secret (the "ID pepper"), so the same number
matches across households and officials' declared relatives, while the log never holds
a number in clear and a leaked log cannot be brute-forced without the secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from domain.errors import InvalidInput

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def validate_id_number(number: str, field: str = "id_number") -> str:
    number = number.strip().upper()
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise InvalidInput("must be an 18-character resident ID number", field=field)
    if check_digit(number[:17]) != number[17]:
        raise InvalidInput("check digit does not match (GB 11643)", field=field)
    return number


def hash_id_number(number: str, pepper: bytes, field: str = "id_number") -> str:
    number = validate_id_number(number, field)
    return hmac.new(pepper, number.encode("ascii"), hashlib.sha256).hexdigest()


def hash_bank_account(number: str, pepper: bytes, field: str = "bank_account") -> str:
    """A bank card / account number (惠民惠农"一卡通") as a keyed hash, like ID numbers, so
    households sharing one account can be found (``BANK_ACCOUNT_SHARED``) without the log
    holding the number."""
    digits = number.replace(" ", "").strip() if isinstance(number, str) else ""
    if not (12 <= len(digits) <= 30 and digits.isdigit()):
        raise InvalidInput("must be a bank account number of 12 to 30 digits", field=field)
    return hmac.new(pepper, f"bank-account:{digits}".encode("ascii"), hashlib.sha256).hexdigest()


def mask_id_number(number: str) -> str:
    """For display and logs: keep the region prefix and the check digit only."""
    return number[:6] + "*" * 11 + number[-1:] if len(number) == 18 else "*" * len(number)


def id_number_from_15(old: str) -> str:
    """A first-generation 15-digit number (一代证) as its 18-digit form: "19" inserted after
    the 6-digit area code, then the GB 11643 check character appended."""
    old = old.strip()
    if len(old) != 15 or not old.isdigit():
        raise InvalidInput("must be a 15-digit first-generation ID number", field="id_number")
    first17 = old[:6] + "19" + old[6:]
    return first17 + check_digit(first17)


def birth_date_of(number: str) -> dt.date | None:
    """The birth date an 18-character ID number encodes, or None if it is no real date."""
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
