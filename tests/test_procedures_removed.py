"""A payment refused for the payee's register status names when that status began.

清退 on 2025-06-01, payment dated 2025-07-15: the refusal says the household had been
removed on 2025-06-01 (the removal's own date), and that the payment is dated 2025-07-15.
"""

from __future__ import annotations

import datetime as dt

import pytest
from api_support import refused
from factories import (
    TOWNSHIP,
    a_funded_account,
    a_registered_household,
    a_removed_household,
    an_exited_household,
    household_payment,
    run,
    sign,
)

from domain.errors import HouseholdNotRegistered
from domain.fund_account import FundAccount

D = dt.date
T = FundAccount.create_id(TOWNSHIP, "central")


def test_a_payment_to_a_removed_household_names_the_removal_date(world) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = a_removed_household(world, "H1", removed_on=D(2025, 6, 1))
    with pytest.raises(HouseholdNotRegistered) as refusal:
        run(world, "FundAccount.Disbursed", T, household_payment(hid, 10_000, day=D(2025, 7, 15)))
    assert refusal.value.field == "payee_id"
    assert refusal.value.message == ("household H1 had been removed (清退) on 2025-06-01; "
                                     "the payment is dated 2025-07-15")


def test_a_payment_after_exit_names_the_exit_date(world) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = an_exited_household(world, "H1")  # exited 2025-11-12
    with pytest.raises(HouseholdNotRegistered) as refusal:
        run(world, "FundAccount.Disbursed", T,
            household_payment(hid, 10_000, day=D(2025, 12, 3), purpose="hh_industry"))
    assert refusal.value.message == (
        "household H1 had exited on 2025-11-12 and hh_industry does not continue after exit; "
        "the payment is dated 2025-12-03")


def test_a_payment_before_registration_names_the_payment_date(world) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = a_registered_household(world, "H1")  # registered 2025-01-23
    with pytest.raises(HouseholdNotRegistered) as refusal:
        run(world, "FundAccount.Disbursed", T, household_payment(hid, 10_000, day=D(2025, 1, 20)))
    assert refusal.value.message == "household H1 was not registered on 2025-01-20"


def test_the_http_refusal_carries_the_removal_date(api, world) -> None:
    a_funded_account(world, TOWNSHIP, 1_000_000)
    hid = a_removed_household(world, "H1", removed_on=D(2025, 6, 1))
    command = sign(world, "FundAccount.Disbursed", T,
                   household_payment(hid, 10_000, day=D(2025, 7, 15)))
    body = refused(api.as_("fund_officer", TOWNSHIP).post("/commands", json=command), 422,
                   "HouseholdNotRegistered", "payee_id")
    assert "removed (清退) on 2025-06-01" in body["detail"]
    assert "dated 2025-07-15" in body["detail"]
