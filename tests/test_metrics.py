"""三率一度 (projections.metrics), with figures computed by hand.

A township of two villages with known registered populations (坝区村 200, 山区村 150; the
township's own is unknown, so it is the sum, 350), in Guizhou (a western province: the
incidence limit is 3%).  Households have two members unless said otherwise.  Year 2025:

坝区村  A1 on the register at the end of 2025, three members by its annual review
        A2 exited 2025-11-12 and relapsed 2025-12-01 (within 365 days): a wrong exit,
           and on the register again at the end of the year
        A3 exited 2025-11-12
        A4 removed 2025-06-01 (清退)
        A5 applied 2026-01-10, income 5,000 yuan ≤ the 2025 line, lack of skills, three
           members: missed in 2025
        A6 applied 2026-01-10, income 8,000 yuan: above the line
        A7 applied 2026-01-10, income 1,000 yuan, main cause illness (sudden): not missed
山区村  B1 exited 2025-11-12; a fake_exit case names it (数字脱贫): a wrong exit
        B2 applied 2026-02-01, income 6,000 yuan, lack of labour, one member: missed
Surveys of 2025: 坝区村 47/50, the township 88/100; one of 2024 (坝区村 10/10) is ignored.
"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import InvalidInput, NotFound
from domain.household import Household
from domain.signing import b64
from factories import (
    COUNTY,
    START,
    STAFF,
    UNIT_KIND,
    a_registered_household,
    an_exited_household,
    application,
    id_number,
    key_for,
    official,
    person_number,
    removal,
    run,
)
from projections import runner
from projections.metrics import metrics
from store.engines import engine_for

D = dt.date
TOWN, A, B = "522625200", "522625200001", "522625200002"


pytestmark = pytest.mark.usefixtures("close_read_models")


def staffed_region(app, code, name, level, parent, population=None, first=500):
    """A region with a unit and the world's officials for its level (as a_county_world)."""
    app.create_region(code, name, level, parent, population)
    unit = f"U{code}"
    app.establish_unit(unit, name, UNIT_KIND[level], code)
    for n, (short, kind) in enumerate(STAFF[level].items(), start=first):
        who = official(short, code)
        app.register_official(who, who, unit, id_number(n))
        app.take_position(who, kind, code, START)
        app.register_key(who, b64(key_for(who).public_bytes), START)


def applied_later(world, code, village, day, income, cause, members=2):
    content = application(world, code, village=village, day=day, income_fen=income)
    content["members"] = [*content["members"], *[
        {"name": f"{code}子女{i}", "relation": "child",
         "id_number_hash": world.app.hash_id(id_number(person_number(f"{code}/child{i}")))}
        for i in range(members - 2)]][:members]
    content["main_cause"], content["secondary_causes"] = cause, []
    run(world, "Household.Applied", Household.create_id(code), content)


@pytest.fixture
def county(world):
    app = world.app
    with app.batch():
        staffed_region(app, TOWN, "坝区镇", "township", COUNTY)
        staffed_region(app, A, "坝区村", "village", TOWN, population=200, first=510)
        staffed_region(app, B, "山区村", "village", TOWN, population=150, first=520)
    a1 = a_registered_household(world, "A1", village=A)
    run(world, "Household.AnnualReviewRecorded", a1, {
        "year": 2025, "effective_date": "2025-12-15", "income_per_capita_fen": 500_000,
        "members_count": 3, "notes": "新增一人"})
    a2 = an_exited_household(world, "A2", village=A)
    run(world, "Household.Relapsed", a2, {"effective_date": "2025-12-01", "cause": "illness",
                                          "income_per_capita_fen": 300_000})
    an_exited_household(world, "A3", village=A)
    a4 = a_registered_household(world, "A4", village=A)
    run(world, "Household.RemovedFromRegister", a4, removal(D(2025, 6, 1)))
    applied_later(world, "A5", A, D(2026, 1, 10), 500_000, "lack_of_skills", members=3)
    applied_later(world, "A6", A, D(2026, 1, 10), 800_000, "lack_of_skills")
    applied_later(world, "A7", A, D(2026, 1, 10), 100_000, "illness")
    b1 = an_exited_household(world, "B1", village=B)
    applied_later(world, "B2", B, D(2026, 2, 1), 600_000, "lack_of_labour", members=1)
    app.open_case(case_no="县纪〔2026〕1号", case_type="fake_exit", title="山区村数字脱贫",
                  region_code=B, effective_date="2026-03-01", incident_date="2025-11-12",
                  evidence=[{"kind": "household", "ref": str(b1)}], recorded_by="纪委")
    for region, sid, year, surveyed, satisfied in [(A, "S1", 2025, 50, 47),
                                                   (TOWN, "S2", 2025, 100, 88),
                                                   (A, "S0", 2024, 10, 10)]:
        app.record_survey(region, survey_id=sid, year=year, effective_date=f"{year}-12-20",
                          surveyed=surveyed, satisfied=satisfied, recorded_by="纪委")
    runner.catch_up(app)
    return engine_for(app.database_url)


def figure(f):
    return f["numerator"], f["denominator"], f["meets"]


def test_the_four_figures_of_a_village_a_township_and_its_villages_by_year(county):
    town = metrics(county, TOWN, 2025)
    assert (town["population"], town["western_province"]) == (350, True)
    assert figure(town["incidence"]) == (5, 350, True)  # A1 3 + A2 2; 1.4% < 3%
    assert town["incidence"]["households"] == 2
    assert figure(town["wrong_exit"]) == (4, 6, False)  # A2, B1 of A2, A3, B1
    assert figure(town["missed"]) == (4, 345, True)  # A5 3 + B2 1 of 350 − 5: 1.16% < 2%
    assert figure(town["satisfaction"]) == (135, 150, True)  # exactly 90%
    children = {c["region_code"]: c for c in town["children"]}
    assert figure(children[A]["incidence"]) == (5, 200, True)  # 2.5% < 3% (western)
    assert figure(children[A]["wrong_exit"]) == (2, 4, False)
    assert figure(children[A]["missed"]) == (3, 195, True)  # 1.54%
    assert figure(children[A]["satisfaction"]) == (47, 50, True)
    assert figure(children[B]["incidence"]) == (0, 150, True)
    assert figure(children[B]["wrong_exit"]) == (2, 2, False)
    assert figure(children[B]["missed"]) == (1, 150, True)
    assert children[B]["satisfaction"] == {"numerator": 0, "denominator": 0, "rate": None,
                                           "threshold": 0.9, "meets": None}
    village = metrics(county, A, 2025)
    assert village["children"] == [] and figure(village["incidence"]) == (5, 200, True)

    # other years
    earlier = metrics(county, TOWN, 2024)
    assert figure(earlier["incidence"]) == (0, 350, True)  # nobody registered before 2025
    assert figure(earlier["satisfaction"]) == (10, 10, True)
    # by the end of 2026 A2 is still on the register; nobody exited in 2026
    later = metrics(county, A, 2026)
    assert figure(later["incidence"]) == (5, 200, True)
    assert later["wrong_exit"]["rate"] is None
    assert later["missed"]["numerator"] == 0  # nobody applied after 2026
    # the original world's villages have no known population: no incidence, not a guess
    assert metrics(county, "522625100", 2025)["incidence"]["rate"] is None
    with pytest.raises(NotFound) as unknown:
        metrics(county, "999", 2025)
    assert unknown.value.field == "region_code"
    with pytest.raises(InvalidInput) as bad:
        metrics(county, TOWN, 99)
    assert bad.value.field == "year"
