"""Projects (扶贫项目): approved by the county (项目审批权限下放到县) with a budget; a
project or supplier payment needs an approved project and stays within its budget;
money recovered or reversed from a project payment frees the budget again."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain.errors import (
    AlreadyExists,
    ForbiddenPurpose,
    InvalidInput,
    NotFound,
    ProjectNotApproved,
    SignerNotAuthorised,
    StepOutOfOrder,
)
from domain.project import Project
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_registered_household,
    an_approved_project,
    event_names,
    last_event,
    official,
    payment,
    project_approval,
    recovery,
    reversal,
    run,
)

D = dt.date
APPROVED_ON = D(2025, 2, 1)
PURPOSE = "prj_village_infrastructure"


def project_payment(project_id, amount_fen, *, day=D(2025, 3, 1), purpose=PURPOSE, **kw):
    return payment("project", project_id, amount_fen, day=day, purpose=purpose, **kw)


def supplier_payment(project_id, amount_fen, *, day=D(2025, 3, 1), purpose=PURPOSE, **kw):
    supplier = uuid.uuid5(uuid.NAMESPACE_URL, "supplier/黔路建设")
    return payment("supplier", supplier, amount_fen, day=day, purpose=purpose,
                   project_id=project_id, **kw)


def test_project_is_approved_by_the_county_with_its_budget(world):
    beneficiary = a_registered_household(world)

    pid = an_approved_project(world, beneficiaries=[beneficiary])

    approved = world.app.stored_events(pid)[0]
    assert type(approved).__qualname__ == "Project.Approved"
    assert (approved.project_code, approved.region_code, approved.purpose_code,
            approved.budget_fen, approved.effective_date) == (
        "PRJ1", VILLAGE, PURPOSE, 500_000, APPROVED_ON)
    assert approved.beneficiary_household_ids == [str(beneficiary)]
    assert {s["position_region"] for s in approved.signatures} == {COUNTY}


def test_project_approval_needs_a_project_purpose(world):
    with pytest.raises(InvalidInput) as refused:
        an_approved_project(world, purpose="hh_industry")
    assert refused.value.field == "purpose_code"


def test_project_for_a_forbidden_purpose_is_refused(world):
    with pytest.raises(ForbiddenPurpose) as refused:
        an_approved_project(world, purpose="office_buildings")
    assert refused.value.field == "purpose_code"


def test_project_approval_is_signed_at_county_level(world):
    with pytest.raises(SignerNotAuthorised) as refused:
        run(world, "Project.Approved", Project.create_id("PRJ1"), project_approval(),
            by={"approver": official("party_secretary", TOWNSHIP)})
    assert refused.value.field == "signatures[2].official_id"


def test_project_approval_names_known_beneficiaries_only(world):
    with pytest.raises(NotFound) as refused:
        an_approved_project(world, beneficiaries=[uuid.uuid4()])
    assert refused.value.field == "content.beneficiary_household_ids[0]"


def test_project_code_approved_again_with_other_content_is_refused(world):
    pid = an_approved_project(world)

    assert run(world, "Project.Approved", pid, project_approval())["recorded"] is False
    with pytest.raises(AlreadyExists) as refused:
        run(world, "Project.Approved", pid, project_approval(budget_fen=600_000))
    assert refused.value.field == "content.project_code"
    assert event_names(world.app, pid) == ["Project.Approved"]


def test_beneficiary_is_added_once(world):
    pid = an_approved_project(world)
    hid = a_registered_household(world)
    content = {"household_id": str(hid), "effective_date": "2025-03-01"}

    run(world, "Project.BeneficiaryAdded", pid, content)
    assert run(world, "Project.BeneficiaryAdded", pid, content)["recorded"] is False
    with pytest.raises(InvalidInput) as refused:
        run(world, "Project.BeneficiaryAdded", pid, {**content, "effective_date": "2025-03-02"})

    assert refused.value.field == "household_id"
    assert world.app.load(Project, pid).beneficiaries == [str(hid)]


def test_beneficiary_added_later_must_be_a_known_household(world):
    pid = an_approved_project(world)

    with pytest.raises(NotFound) as refused:
        run(world, "Project.BeneficiaryAdded", pid,
            {"household_id": str(uuid.uuid4()), "effective_date": "2025-03-01"})

    assert refused.value.field == "content.household_id"
    assert event_names(world.app, pid) == ["Project.Approved"]


def test_project_is_accepted_on_completion_once(world):
    pid = an_approved_project(world)
    content = {"effective_date": "2025-09-30", "report": "竣工验收合格"}

    run(world, "Project.AcceptedOnCompletion", pid, content)

    accepted = last_event(world.app, pid)
    assert type(accepted).__qualname__ == "Project.AcceptedOnCompletion"
    assert [(s["role"], s["position_region"]) for s in accepted.signatures] == [
        ("preparer", TOWNSHIP), ("reviewer", COUNTY), ("approver", COUNTY)]
    with pytest.raises(StepOutOfOrder):
        run(world, "Project.AcceptedOnCompletion", pid, {**content, "report": "复验"})


def test_project_acceptance_before_approval_is_refused(world):
    pid = an_approved_project(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "Project.AcceptedOnCompletion", pid,
            {"effective_date": "2025-01-31", "report": "竣工验收合格"})
    assert refused.value.field == "effective_date"


def test_project_payment_counts_against_the_approved_budget(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world)
    content = project_payment(pid, 300_000)

    run(world, "FundAccount.Disbursed", account, content)

    paid = last_event(world.app, account)
    assert (paid.payee_kind, paid.payee_id, paid.amount_fen) == ("project", str(pid), 300_000)
    recorded = last_event(world.app, pid)
    assert type(recorded).__qualname__ == "Project.PaymentRecorded"
    assert (recorded.movement_id, recorded.account_id, recorded.amount_fen) == (
        content["movement_id"], str(account), 300_000)
    assert world.app.load(Project, pid).paid_fen == 300_000


def test_project_payment_beyond_the_budget_is_refused(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world, budget_fen=500_000)
    run(world, "FundAccount.Disbursed", account, project_payment(pid, 300_000))

    with pytest.raises(ProjectNotApproved) as refused:
        run(world, "FundAccount.Disbursed", account, project_payment(pid, 200_001))
    assert refused.value.field == "amount_fen"

    run(world, "FundAccount.Disbursed", account, project_payment(pid, 200_000))
    assert world.app.load(Project, pid).paid_fen == 500_000
    assert world.balance(account) == 500_000


def test_project_payment_dated_before_the_approval_is_refused(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world)

    with pytest.raises(ProjectNotApproved) as refused:
        run(world, "FundAccount.Disbursed", account,
            project_payment(pid, 100, day=APPROVED_ON - dt.timedelta(days=1)))
    assert refused.value.field == "effective_date"


def test_payment_to_a_project_never_approved_is_refused(world):
    account = a_funded_account(world, COUNTY)

    with pytest.raises(NotFound) as refused:
        run(world, "FundAccount.Disbursed", account,
            project_payment(Project.create_id("NOPE"), 100))
    assert refused.value.field == "content.payee_id"
    assert world.balance(account) == 1_000_000


def test_project_payment_keeps_the_projects_purpose(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world)

    with pytest.raises(InvalidInput) as refused:
        run(world, "FundAccount.Disbursed", account,
            project_payment(pid, 100, purpose="prj_drinking_water"))
    assert refused.value.field == "purpose"


def test_supplier_payment_needs_its_project(world):
    account = a_funded_account(world, COUNTY)

    with pytest.raises(NotFound) as refused:
        run(world, "FundAccount.Disbursed", account, supplier_payment(None, 100))
    assert refused.value.field == "project_id"
    assert world.balance(account) == 1_000_000


def test_supplier_payment_counts_against_its_projects_budget(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world, budget_fen=200_000)
    run(world, "FundAccount.Disbursed", account, supplier_payment(pid, 150_000))

    with pytest.raises(ProjectNotApproved):
        run(world, "FundAccount.Disbursed", account, supplier_payment(pid, 50_001))

    paid = [e for e in world.app.stored_events(account)
            if type(e).__qualname__ == "FundAccount.Disbursed"]
    assert [(e.payee_kind, e.project_id) for e in paid] == [("supplier", str(pid))]
    assert world.app.load(Project, pid).paid_fen == 150_000


def test_recovered_project_payment_frees_the_budget(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world, budget_fen=200_000)
    pay = project_payment(pid, 200_000)
    run(world, "FundAccount.Disbursed", account, pay)

    run(world, "FundAccount.Recovered", account,
        recovery(pay["movement_id"], 80_000, purpose=PURPOSE, reason="工程量虚报"))

    refund = last_event(world.app, pid)
    assert type(refund).__qualname__ == "Project.RefundRecorded"
    assert (refund.of_movement_id, refund.amount_fen) == (pay["movement_id"], 80_000)
    assert world.app.load(Project, pid).paid_fen == 120_000
    run(world, "FundAccount.Disbursed", account, project_payment(pid, 80_000))


def test_reversed_supplier_payment_frees_the_budget(world):
    account = a_funded_account(world, COUNTY)
    pid = an_approved_project(world, budget_fen=200_000)
    pay = supplier_payment(pid, 150_000)
    run(world, "FundAccount.Disbursed", account, pay)

    run(world, "FundAccount.Reversed", account,
        reversal(pay["movement_id"], 150_000, purpose=PURPOSE))

    assert world.app.load(Project, pid).paid_fen == 0
    assert world.balance(account) == 1_000_000
