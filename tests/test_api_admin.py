"""Administrative verbs over HTTP: regions, units, officials, positions, keys (register,
rotate, revoke), relatives and accounts — enough to build a village from an empty store and
have its accountant's first signed step accepted."""

from __future__ import annotations

from typing import Any

from domain.household import Household
from domain.identity import check_digit
from domain.signing import SigningKey, b64, sign_command

REGIONS = [("P", "province", None), ("C", "city", "P"), ("K", "county", "C"),
           ("T", "township", "K"), ("V", "village", "T")]


def id_number(n: int) -> str:
    first17 = f"11010119800101{n:03d}"
    return first17 + check_digit(first17)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def a_village_over_http(api: Any) -> dict[str, Any]:
    """Regions P → … → V, its committee, accountant 'acc' with a key, a township account."""
    for code, level, parent in REGIONS:
        ok(api.client.post("/regions", json={"code": code, "name": code, "level": level,
                                             "parent_code": parent}), 201)
    ok(api.client.post("/units", json={"code": "VC", "name": "村委会",
                                       "kind": "village_committee", "region_code": "V"}), 201)
    created = ok(api.client.post("/officials", json={
        "code": "acc", "name": "李会计", "unit_code": "VC", "id_number": id_number(1)}), 201)
    acc = created["id"]
    ok(api.client.post(f"/officials/{acc}/positions", json={
        "kind": "village_accountant", "region_code": "V", "start": "2020-01-01"}))
    key = SigningKey.from_seed(b"acc")
    key_id = ok(api.client.post(f"/officials/{acc}/keys", json={
        "public_key": b64(key.public_bytes), "valid_from": "2020-01-01"}), 201)["key_id"]
    return {"acc": acc, "key": key, "key_id": key_id}


def application(api: Any, code: str, day: str = "2025-01-05") -> dict[str, Any]:
    return {"household_code": code, "village_code": "V", "effective_date": day,
            "head_name": "张三", "main_cause": "illness", "secondary_causes": [],
            "members": [{"name": "张三", "relation": "head",
                         "id_number_hash": api.zhuisu.hash_id(id_number(100))}],
            "income_per_capita_fen": 200_000, "bank_account_hash": None}


def applied(api: Any, village: dict[str, Any], code: str, key: SigningKey | None = None,
            day: str = "2025-01-05") -> dict[str, Any]:
    return sign_command("Household.Applied", Household.create_id(code),
                        application(api, code, day),
                        [(village["acc"], key or village["key"], "preparer")])


def test_an_administrator_builds_a_village_whose_accountant_then_signs(api: Any) -> None:
    village = a_village_over_http(api)
    official = ok(api.client.get(f"/officials/{village['acc']}"))
    assert [p["kind"] for p in official["positions"]] == ["village_accountant"]
    assert [k["key_id"] for k in official["keys"]] == [village["key_id"]]
    assert ok(api.client.get("/regions/T"))["children"] == ["V"]

    clerk = api.as_("village_official", "V")
    r = clerk.post("/commands", json=applied(api, village, "H1"))
    assert r.status_code == 201, r.text


def test_rotated_and_revoked_keys_over_http(api: Any) -> None:
    village = a_village_over_http(api)
    acc, new_key = village["acc"], SigningKey.from_seed(b"acc#1")
    rotated = ok(api.client.post(f"/officials/{acc}/keys/{village['key_id']}/rotation", json={
        "public_key": b64(new_key.public_bytes), "effective_date": "2025-01-01"}), 201)
    assert rotated["key_id"] == new_key.key_id
    clerk = api.as_("village_official", "V")
    refused = clerk.post("/commands", json=applied(api, village, "H1"))  # old key, 2025 date
    assert (refused.status_code, refused.json()["rule"]) == (403, "SignatureInvalid")
    assert clerk.post("/commands", json=applied(api, village, "H1", new_key)).status_code == 201

    official = ok(api.client.post(f"/officials/{acc}/keys/{new_key.key_id}/revocation",
                                  json={"effective_date": "2025-02-01", "reason": "手机丢失"}))
    assert [k["revoked"] for k in official["keys"]] == [False, True]
    late = clerk.post("/commands", json=applied(api, village, "H2", new_key, "2025-02-02"))
    assert (late.status_code, late.json()["rule"]) == (403, "SignatureInvalid")


def test_relatives_and_positions_ended_over_http(api: Any) -> None:
    village = a_village_over_http(api)
    acc = village["acc"]
    official = ok(api.client.post(f"/officials/{acc}/relatives",
                                  json={"id_number": id_number(7), "relation": "spouse"}))
    assert "relative" not in str(official) and id_number(7) not in str(official)
    r = api.client.post(f"/officials/{acc}/relatives",
                        json={"id_number": "123", "relation": "spouse"})
    assert (r.status_code, r.json()["field"]) == (422, "id_number")
    assert id_number(7) not in r.text

    official = ok(api.client.post(f"/officials/{acc}/positions/end", json={
        "kind": "village_accountant", "region_code": "V", "end": "2025-01-01"}))
    assert official["positions"][0]["end"] == "2025-01-01"
    refused = api.as_("village_official", "V").post("/commands",
                                                    json=applied(api, village, "H1"))
    assert (refused.status_code, refused.json()["rule"]) == (403, "SignerNotAuthorised")


def test_accounts_are_opened_from_township_level_up(api: Any) -> None:
    a_village_over_http(api)
    opened = ok(api.client.post("/accounts", json={"region_code": "T", "fund_source": "central"}),
                201)
    assert opened["code"] == "T/central"
    assert ok(api.client.get(f"/accounts/{opened['id']}"))["balance_fen"] == 0
    r = api.client.post("/accounts", json={"region_code": "V", "fund_source": "central"})
    assert (r.status_code, r.json()["field"]) == (422, "region_code")


def test_administrative_refusals_name_the_rule_and_field(api: Any) -> None:
    village = a_village_over_http(api)
    cases = [
        ("/regions", {"code": "V", "name": "V", "level": "village", "parent_code": "T"},
         409, "AlreadyExists", "code"),
        ("/regions", {"code": "X", "name": "X", "level": "village", "parent_code": "K"},
         422, "InvalidInput", "parent_code"),
        ("/regions", {"code": "X", "name": "X", "level": "hamlet", "parent_code": "K"},
         422, "InvalidInput", "level"),
        ("/units", {"code": "U", "name": "U", "kind": "club", "region_code": "V"},
         422, "InvalidInput", "kind"),
        ("/officials", {"code": "x", "name": "x", "unit_code": "nope",
                        "id_number": id_number(2)}, 404, "NotFound", "unit_code"),
        ("/officials", {"code": "x", "name": "x", "unit_code": "VC", "id_number": id_number(2),
                        "private_key": "never accepted"}, 422, "InvalidInput", "private_key"),
        (f"/officials/{village['acc']}/positions",
         {"kind": "county_magistrate", "region_code": "V", "start": "2020-01-01"},
         422, "InvalidInput", "region_code"),
        (f"/officials/{village['acc']}/keys/0000000000000000/revocation",
         {"effective_date": "2025-01-01", "reason": "lost"}, 404, "NotFound", "key_id"),
    ]
    for path, body, status, rule, field in cases:
        r = api.client.post(path, json=body)
        assert (r.status_code, r.json()["rule"], r.json()["field"]) == (status, rule, field), (
            path, r.text)
