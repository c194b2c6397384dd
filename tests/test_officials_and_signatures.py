"""Signatures (谁签字谁负责): a step counts only when every role its rule names is signed
once, by distinct officials (preparer ≠ approver), each signature verifies over the step's
canonical content with a key the official held on the step's business date, and each
signer then held a position at the right level of the subject's region granting that role.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from domain.errors import (
    AlreadyExists,
    InvalidInput,
    MissingSignature,
    NotFound,
    SeparationOfDuties,
    SignatureInvalid,
    SignerNotAuthorised,
)
from domain.household import Household
from domain.official import Official
from domain.signed import signed_content, step_name
from domain.signing import b64, step_message, verify_signature
from factories import (
    CITY,
    COUNTY,
    OTHER_VILLAGE,
    START,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_household_applied,
    a_household_through,
    a_registered_household,
    allocation,
    an_approved_project,
    an_exited_household,
    application,
    event_names,
    household_payment,
    id_number,
    identification_steps,
    key_for,
    official,
    official_id,
    recovery,
    reversal,
    run,
    sign,
)

D = dt.date
APPRAISAL = identification_steps()[0]  # (step, content) dated 2025-01-06, preparer + approver
ACCOUNTANT = official("accountant", VILLAGE)
SECRETARY = official("party_secretary", VILLAGE)


def appraisal(world, hid, **kw) -> dict:
    """The signed command appraising ``hid`` (default signers unless ``by``/``keys``)."""
    step, content = APPRAISAL
    return sign(world, step, hid, content, **kw)


def appraise(world, hid, **kw) -> dict:
    return world.app.execute(appraisal(world, hid, **kw))


def flip_one_byte(signature_b64: str) -> str:
    raw = bytearray(base64.b64decode(signature_b64))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# forged and replayed signatures ------------------------------------------------------
def test_forged_signature_bytes_are_refused_naming_the_signature(world):
    hid = a_household_applied(world)
    command = appraisal(world, hid)
    command["signatures"][1]["signature"] = flip_one_byte(command["signatures"][1]["signature"])

    with pytest.raises(SignatureInvalid) as refused:
        world.app.execute(command)

    assert refused.value.field == "signatures[1].signature"
    assert event_names(world.app, hid) == ["Household.Applied"]


def test_a_retry_with_a_forged_signature_is_refused_as_a_new_step_would_be(world):
    """A retry answered "nothing new" would tell whoever sent it that the step is stored:
    with a signature that does not verify it gets the very refusal a new step gets."""
    accepted = a_household_applied(world, "H1")
    appraise(world, accepted)
    fresh = a_household_applied(world, "H2")
    refusals = []
    for hid in (accepted, fresh):
        command = appraisal(world, hid)
        command["signatures"][1]["signature"] = flip_one_byte(
            command["signatures"][1]["signature"])
        with pytest.raises(SignatureInvalid) as refused:
            world.app.execute(command)
        refusals.append((refused.value.field, refused.value.message))
    assert refusals[0] == refusals[1]
    assert refusals[0][0] == "signatures[1].signature"
    assert event_names(world.app, accepted) == ["Household.Applied", "Household.AppraisedByVillage"]
    assert event_names(world.app, fresh) == ["Household.Applied"]


def test_a_retry_signed_anew_answers_nothing_new_only_if_it_verifies(world):
    hid = a_household_applied(world)
    appraise(world, hid)
    world.app.register_key(SECRETARY, b64(key_for(SECRETARY, 1).public_bytes), D(2025, 1, 7))
    resigned = appraisal(world, hid, keys={SECRETARY: key_for(SECRETARY, 1)})
    assert world.app.execute(resigned)["recorded"] is False  # the same content, a newer key

    with pytest.raises(SignerNotAuthorised) as refused:
        appraise(world, hid, by={"approver": "nobody@522625100001"})
    assert refused.value.field.startswith("signatures[") and refused.value.field.endswith(
        "].official_id")
    assert len(world.app.stored_events(hid)) == 2


def test_signature_that_is_not_base64_is_refused(world):
    hid = a_household_applied(world)
    command = appraisal(world, hid)
    command["signatures"][0]["signature"] = "not base64!"

    with pytest.raises(SignatureInvalid) as refused:
        world.app.execute(command)
    assert refused.value.field == "signatures[0].signature"


def test_signature_over_other_content_is_refused(world):
    hid = a_household_applied(world)
    step, content = APPRAISAL
    command = sign(world, step, hid, content)
    command["content"] = {**content, "votes_for": content["votes_for"] + 1}

    with pytest.raises(SignatureInvalid) as refused:
        world.app.execute(command)
    assert refused.value.field == "signatures[0].signature"


def test_signature_replayed_on_another_subject_is_refused(world):
    first, second = a_household_applied(world, "H1"), a_household_applied(world, "H2")
    step, content = APPRAISAL
    command = sign(world, step, first, content)
    world.app.execute(command)

    with pytest.raises(SignatureInvalid) as refused:
        world.app.execute({**command, "subject": str(second)})
    assert refused.value.field == "signatures[0].signature"
    assert event_names(world.app, second) == ["Household.Applied"]


def test_signature_replayed_on_another_step_is_refused(world):
    hid = a_household_through(world, 3)  # first notice up; township review due 2025-01-15
    content = {"effective_date": "2025-01-15", "opinion": "同意"}
    for_exit = sign(world, "Household.ExitVerifiedByTownship", hid, content)

    with pytest.raises(SignatureInvalid) as refused:
        world.app.execute({**for_exit, "step": "Household.ReviewedByTownship"})
    assert refused.value.field == "signatures[0].signature"


def test_signature_under_another_role_is_refused(world):
    """A signature binds its role: an approver's signature relabelled reviewer fails."""
    hid = a_household_through(world, 1)
    step, content = identification_steps()[1]  # VerifiedByVillage: reviewer + approver
    command = sign(world, step, hid, content, by={"reviewer": SECRETARY,
                                                  "approver": official("director", VILLAGE)})
    command["signatures"][0]["role"], command["signatures"][1]["role"] = "approver", "reviewer"

    with pytest.raises(SignatureInvalid):
        world.app.execute(command)


# who may sign ------------------------------------------------------------------------
def test_village_accountant_cannot_sign_a_county_approval(world):
    hid = a_household_through(world, 5)
    step, content = identification_steps()[5]

    with pytest.raises(SignerNotAuthorised) as refused:
        run(world, step, hid, content, by={"approver": ACCOUNTANT})

    assert refused.value.field == "signatures[2].official_id"
    assert refused.value.details["role"] == "approver"


def test_official_of_another_village_cannot_sign(world):
    hid = a_household_applied(world)

    with pytest.raises(SignerNotAuthorised) as refused:
        appraise(world, hid, by={"approver": official("party_secretary", OTHER_VILLAGE)})
    assert refused.value.field == "signatures[1].official_id"


def test_funds_officer_cannot_sign_an_identification_step(world):
    hid = a_household_through(world, 5)
    step, content = identification_steps()[5]

    with pytest.raises(SignerNotAuthorised) as refused:
        run(world, step, hid, content, by={"approver": official("finance_director", COUNTY)})
    assert refused.value.field == "signatures[2].official_id"


def test_village_accountant_cannot_approve_a_township_payment(world):
    account = a_funded_account(world)
    hid = a_registered_household(world)

    with pytest.raises(SignerNotAuthorised):
        run(world, "FundAccount.Disbursed", account, household_payment(hid, 100_00),
            by={"approver": ACCOUNTANT})


def test_preparer_and_approver_must_be_different_officials(world):
    """Even an official holding both positions may not prepare and approve one step."""
    world.app.take_position(ACCOUNTANT, "village_director", VILLAGE, START)
    hid = a_household_applied(world)

    with pytest.raises(SeparationOfDuties) as refused:
        appraise(world, hid, by={"preparer": ACCOUNTANT, "approver": ACCOUNTANT})
    assert refused.value.field == "signatures"
    assert refused.value.details["official_id"] == official_id(ACCOUNTANT)


def test_one_official_signs_a_step_in_one_role_only(world):
    hid = a_household_through(world, 1)
    step, content = identification_steps()[1]

    with pytest.raises(SeparationOfDuties):
        run(world, step, hid, content, by={"reviewer": SECRETARY, "approver": SECRETARY})


def test_missing_role_is_refused_naming_the_role(world):
    hid = a_household_applied(world)

    with pytest.raises(MissingSignature) as refused:
        appraise(world, hid, by={"approver": None})
    assert refused.value.field == "signatures"
    assert refused.value.details["role"] == "approver"


def test_step_without_signatures_is_refused(world):
    hid = a_household_applied(world)
    command = appraisal(world, hid)

    with pytest.raises(MissingSignature):
        world.app.execute({**command, "signatures": []})


def test_role_the_step_does_not_take_is_refused(world):
    hid = a_household_applied(world)

    with pytest.raises(InvalidInput) as refused:
        appraise(world, hid, by={"witness": official("first_secretary", VILLAGE)})
    assert refused.value.field == "signatures[2].role"


def test_unknown_official_is_not_authorised(world):
    hid = a_household_applied(world)

    with pytest.raises(SignerNotAuthorised) as refused:
        appraise(world, hid, by={"approver": "nobody@" + VILLAGE})
    assert refused.value.field == "signatures[1].official_id"


def test_signature_with_a_key_the_official_never_registered_is_refused(world):
    hid = a_household_applied(world)

    with pytest.raises(SignatureInvalid) as refused:
        appraise(world, hid, keys={SECRETARY: key_for(SECRETARY, generation=7)})
    assert refused.value.field == "signatures[1].key_id"


def test_signature_with_another_officials_key_is_refused(world):
    hid = a_household_applied(world)
    with pytest.raises(SignatureInvalid) as refused:
        appraise(world, hid, keys={SECRETARY: key_for(ACCOUNTANT)})
    assert refused.value.field == "signatures[1].key_id"


# keys over time ------------------------------------------------------------------------
def test_key_used_before_its_valid_from_is_refused(world):
    new_key = key_for(SECRETARY, 1)
    world.app.register_key(SECRETARY, b64(new_key.public_bytes), D(2025, 2, 1))
    hid = a_household_applied(world)

    with pytest.raises(SignatureInvalid) as refused:
        appraise(world, hid, keys={SECRETARY: new_key})  # step dated 2025-01-06
    assert refused.value.field == "signatures[1].key_id"


def test_key_refused_from_its_rotation_date_and_the_new_key_accepted(world):
    old, new = key_for(SECRETARY), key_for(SECRETARY, 1)
    world.app.rotate_key(SECRETARY, old.key_id, b64(new.public_bytes), D(2025, 1, 6))
    hid = a_household_applied(world)

    with pytest.raises(SignatureInvalid) as refused:
        appraise(world, hid, keys={SECRETARY: old})
    assert refused.value.field == "signatures[1].key_id"

    appraise(world, hid, keys={SECRETARY: new})
    assert event_names(world.app, hid)[-1] == "Household.AppraisedByVillage"


def test_rotated_key_still_signs_for_business_dates_before_the_rotation(world):
    old, new = key_for(ACCOUNTANT), key_for(ACCOUNTANT, 1)
    world.app.rotate_key(ACCOUNTANT, old.key_id, b64(new.public_bytes), D(2025, 1, 6))

    hid = a_household_applied(world)  # dated 2025-01-05, signed with the old key

    assert event_names(world.app, hid) == ["Household.Applied"]


def test_revoked_key_signs_nothing_recorded_after_the_revocation(world):
    """Even for a business date before the revocation's effective date (a lost key)."""
    world.app.revoke_key(SECRETARY, key_for(SECRETARY).key_id, D(2025, 6, 1), "钥匙遗失")
    hid = a_household_applied(world)

    with pytest.raises(SignatureInvalid) as refused:
        appraise(world, hid)  # dated 2025-01-06
    assert refused.value.field == "signatures[1].key_id"


def test_key_cannot_be_registered_twice(world):
    with pytest.raises(AlreadyExists) as refused:
        world.app.register_key(ACCOUNTANT, b64(key_for(ACCOUNTANT).public_bytes), START)
    assert refused.value.field == "public_key"


def test_rotation_must_come_after_the_old_keys_start(world):
    with pytest.raises(InvalidInput) as refused:
        world.app.rotate_key(ACCOUNTANT, key_for(ACCOUNTANT).key_id,
                             b64(key_for(ACCOUNTANT, 1).public_bytes), START)
    assert refused.value.field == "effective_date"


def test_revocation_needs_a_reason(world):
    with pytest.raises(InvalidInput) as refused:
        world.app.revoke_key(ACCOUNTANT, key_for(ACCOUNTANT).key_id, D(2025, 6, 1), "")
    assert refused.value.field == "reason"


# positions over time ----------------------------------------------------------------------
def a_new_official(world, code: str, kind: str, region: str, start: D) -> str:
    world.app.register_official(code, "新任干部", f"U{region}", id_number(900_000))
    world.app.take_position(code, kind, region, start)
    world.app.register_key(code, b64(key_for(code).public_bytes), START)
    return code


def test_position_taken_only_after_the_step_date_does_not_authorise(world):
    newcomer = a_new_official(world, "newcomer", "village_party_secretary", VILLAGE, D(2025, 3, 1))
    hid = a_household_applied(world)

    with pytest.raises(SignerNotAuthorised) as refused:
        appraise(world, hid, by={"approver": newcomer})  # dated 2025-01-06
    assert refused.value.field == "signatures[1].official_id"


def test_position_left_before_the_step_date_does_not_authorise(world):
    world.app.leave_position(SECRETARY, "village_party_secretary", VILLAGE, D(2025, 1, 6))
    hid = a_household_applied(world)

    with pytest.raises(SignerNotAuthorised) as refused:
        appraise(world, hid)  # dated 2025-01-06, the first day no longer held
    assert refused.value.field == "signatures[1].official_id"


def test_position_held_on_the_step_date_authorises_a_step_recorded_later(world):
    world.app.leave_position(SECRETARY, "village_party_secretary", VILLAGE, D(2025, 1, 7))
    hid = a_household_applied(world)

    appraise(world, hid)  # dated 2025-01-06, the last day held

    assert event_names(world.app, hid)[-1] == "Household.AppraisedByVillage"


def test_position_is_held_at_its_own_level_only(world):
    world.app.register_official("misfit", "错配", f"U{VILLAGE}", id_number(900_001))

    with pytest.raises(InvalidInput) as refused:
        world.app.take_position("misfit", "township_head", VILLAGE, START)
    assert refused.value.field == "region_code"


# officials ---------------------------------------------------------------------------
def test_official_is_registered_with_a_keyed_hash_of_the_id_number(world):
    number = id_number(900_002)
    world.app.register_official("clerk", "办事员", f"U{TOWNSHIP}", number)

    registered = world.app.stored_events(Official.create_id("clerk"))[0]
    assert type(registered).__qualname__ == "Official.Registered"
    assert registered.id_number_hash == world.app.hash_id(number)
    assert number not in repr(vars(registered))


def test_official_with_an_invalid_id_number_is_refused(world):
    number = id_number(900_003)
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")

    with pytest.raises(InvalidInput) as refused:
        world.app.register_official("clerk", "办事员", f"U{TOWNSHIP}", wrong)
    assert refused.value.field == "id_number"


def test_declared_relative_is_stored_by_keyed_hash(world):
    number = id_number(900_004)

    world.app.declare_relative(SECRETARY, number, "spouse")

    declared = world.app.stored_events(Official.create_id(SECRETARY))[-1]
    assert type(declared).__qualname__ == "Official.RelativeDeclared"
    assert (declared.id_number_hash, declared.relation) == (world.app.hash_id(number), "spouse")


# the stored signatures -------------------------------------------------------------------
def test_stored_event_names_each_signers_position_and_responsibility(world):
    hid = a_household_applied(world)
    appraise(world, hid)

    appraised = world.app.stored_events(hid)[-1]
    assert [(s["role"], s["official_id"], s["position"], s["position_region"],
             s["responsibility"]) for s in appraised.signatures] == [
        ("preparer", official_id(ACCOUNTANT), "village_accountant", VILLAGE, "handling"),
        ("approver", official_id(SECRETARY), "village_party_secretary", VILLAGE, "first")]
    assert [s["key_id"] for s in appraised.signatures] == [
        key_for(ACCOUNTANT).key_id, key_for(SECRETARY).key_id]


def test_every_stored_signature_verifies_again_from_the_event_alone(world):
    """The canonical content of each signed event is exactly what its signers signed."""
    registered = an_exited_household(world, "H1")
    account = a_funded_account(world, COUNTY)
    township = world.account(TOWNSHIP)
    give = allocation(township, 300_000)
    run(world, "FundAccount.Allocated", account, give)
    pay = household_payment(registered, 100_000, day=D(2025, 3, 1))
    run(world, "FundAccount.Disbursed", township, pay)
    run(world, "FundAccount.Recovered", township, recovery(pay["movement_id"], 40_000))
    run(world, "FundAccount.Reversed", township,
        reversal(pay["movement_id"], 60_000, purpose="hh_industry", day=D(2025, 7, 2)))
    run(world, "FundAccount.Reversed", account, reversal(give["movement_id"], 300_000,
                                                         purpose="special_fund"))
    project = an_approved_project(world)

    officials = {}
    checked = set()
    for aggregate_id in (registered, account, township, project):
        for event in world.app.stored_events(aggregate_id):
            for sig in getattr(event, "signatures", []):
                if sig["official_id"] not in officials:
                    officials[sig["official_id"]] = world.app.load(Official, sig["official_id"])
                key = officials[sig["official_id"]].keys[sig["key_id"]]
                message = step_message(step_name(event), event.originator_id,
                                       signed_content(event), sig["official_id"], sig["role"],
                                       sig["key_id"])
                assert verify_signature(key.public_key, sig["signature"], message), (
                    step_name(event), sig["role"])
                checked.add(step_name(event))
    assert checked >= {"Household.Applied", "Household.ApprovedByCounty",
                       "Household.ExitConfirmedByHousehold", "FundAccount.Received",
                       "FundAccount.Allocated", "FundAccount.Disbursed", "FundAccount.Recovered",
                       "FundAccount.Reversed", "Project.Approved"}


# the command envelope ----------------------------------------------------------------
def test_unknown_step_is_refused(world):
    with pytest.raises(InvalidInput) as refused:
        world.app.execute({"step": "Household.Bribed", "subject": None, "content": {},
                           "signatures": []})
    assert refused.value.field == "step"


def test_content_field_the_step_does_not_have_is_refused(world):
    hid = a_household_applied(world)
    step, content = APPRAISAL

    with pytest.raises(InvalidInput) as refused:
        run(world, step, hid, {**content, "votes_abstained": 3})
    assert refused.value.field == "content.votes_abstained"


def test_content_field_the_step_needs_is_refused_when_missing(world):
    hid = a_household_applied(world)
    step, content = APPRAISAL

    with pytest.raises(InvalidInput) as refused:
        run(world, step, hid, {k: v for k, v in content.items() if k != "votes_total"})
    assert refused.value.field == "content.votes_total"


def test_business_date_must_be_a_calendar_date(world):
    hid = a_household_applied(world)
    step, content = APPRAISAL

    with pytest.raises(InvalidInput) as refused:
        run(world, step, hid, {**content, "effective_date": "06/01/2025"})
    assert refused.value.field == "effective_date"


@pytest.mark.parametrize("subject, error", [("not-a-uuid", InvalidInput),
                                            ("8a1c5b0e-0000-4000-8000-000000000000", NotFound)])
def test_step_on_a_subject_that_is_not_a_household_is_refused(world, subject, error):
    step, content = APPRAISAL
    command = sign(world, step, subject, content, where=world.app.region(VILLAGE).path)

    with pytest.raises(error) as refused:
        world.app.execute(command)
    assert refused.value.field == "subject"


def test_creation_step_names_its_own_subject(world):
    content = application(world, "H1")

    with pytest.raises(InvalidInput) as refused:
        run(world, "Household.Applied", Household.create_id("H2"), content,
            where=world.app.region(VILLAGE).path)
    assert refused.value.field == "subject"


def test_malformed_signature_entry_is_refused_naming_its_field(world):
    hid = a_household_applied(world)
    command = appraisal(world, hid)
    del command["signatures"][1]["key_id"]

    with pytest.raises(InvalidInput) as refused:
        world.app.execute(command)
    assert refused.value.field == "signatures[1].key_id"


# administration ------------------------------------------------------------------------
def test_region_sits_directly_under_the_level_above(world):
    with pytest.raises(InvalidInput) as refused:
        world.app.create_region("522625200", "另一镇", "township", CITY)
    assert refused.value.field == "parent_code"


def test_region_code_is_unique(world):
    with pytest.raises(AlreadyExists) as refused:
        world.app.create_region(VILLAGE, "重名村", "village", TOWNSHIP)
    assert refused.value.field == "code"


def test_new_region_knows_its_whole_path(world):
    world.app.create_region("522625100003", "新村", "village", TOWNSHIP)

    assert world.app.region("522625100003").path == {
        "province": "52", "city": "5226", "county": COUNTY, "township": TOWNSHIP,
        "village": "522625100003"}


def test_unit_kind_is_one_of_the_known_kinds(world):
    with pytest.raises(InvalidInput) as refused:
        world.app.establish_unit("U-X", "合作社", "cooperative", VILLAGE)
    assert refused.value.field == "kind"
