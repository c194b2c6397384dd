"""Planted register matches (大数据比对的埋设数据) for the demo county, and their ground truth.

``plant_registers(plan, n)`` draws, from a demo plan (``demo.county``) after the year and
the misconduct are planned, ``n`` people per comparison model
(``inspection.rules.compare``) and writes the other departments' registers as files in
the shapes ``exchange.registers`` reads (CSV, and .xlsx for vehicles and property), each
row of a planted person made so that only its model's rule finds it:

=====================================  ===================================================
model                                  planted / near miss (must not match)
=====================================  ===================================================
``COMPARE_PAID_AFTER_DEATH``           died the day before the household's last payment /
                                       died on the day of the last payment
``COMPARE_PAYROLL_MEMBER``             a member on the payroll / a payroll row of someone
                                       in no household
``COMPARE_CADRE_RELATIVE``             the village director's 兄弟 (second degree, the
                                       degree left blank) / his 表兄弟 (not 近亲属)
``COMPARE_VEHICLE``                    a car bought for 80,000–200,000 元 / 49,999 元
``COMPARE_COMMERCIAL_HOUSING``         商品房 of 60–140 m² / 商品房 of 59.5 m², 自建房 of 120 m²
``COMPARE_BUSINESS_OWNER``             法定代表人 or 股东 / 监事
``COMPARE_DUPLICATE_PERSON``           a new household of the same village lists a member
                                       of a registered one / —
``COMPARE_DIBAO_CONTRADICTS``          低保 取消 before the household applied / 停保 the
                                       day after it applied, 在保
``COMPARE_DISABILITY_CONTRADICTS``     因残 households left out of the disabled persons'
                                       register / every other 因残 household in it
=====================================  ===================================================

Every third planted person's ID number is given in its 15-digit first-generation form
(when born in the 1900s), which the import converts.  Each planted person is in one
register only, so the truth is exact: per model, the ``match_id`` each planted item must
raise (``{model}:{payment}:{id hash[:16]}`` for a death, ``{model}:{household}:{id
hash[:16]}`` for a member, ``{model}:{household}`` for the disability model) with the
household, the person's ID hash (never the number) and the payments concerned;
``near_misses`` likewise, which must raise nothing.  ``noise`` more rows per register are of
people from elsewhere (another county's address code).  A separate random stream (seeded
from the demo's seed) draws every choice: the same seed plants the same rows.

The files are imported by the command line (``zhuisu demo --plant-registers``), which may
import ``exchange``; this module may not.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.county import IDENTIFIED_BY, Step, _Household, _Planner
from domain.identity import check_digit

FORMAT = "zhuisu-demo-registers/1"
AS_OF = dt.date(2025, 12, 31)
ELSEWHERE = ("522627", "522628", "520102", "520103", "530102", "510104")
DEPARTMENTS = {"death": "县公安局", "payroll": "县财政局", "cadre_relatives": "县委组织部",
               "vehicle": "县公安局交警大队", "property": "县自然资源局", "business": "县市场监管局",
               "dibao": "县民政局", "disability": "县残联"}
HEADERS = {
    "death": ["序号", "姓名", "身份证号码", "死亡日期"],
    "payroll": ["序号", "姓名", "身份证号码", "工作单位", "职务"],
    "cadre_relatives": ["序号", "姓名", "亲属证件号码", "干部证件号码", "干部职务", "关系"],
    "vehicle": ["序号", "姓名", "身份证号码", "号牌号码", "车辆类型", "购置价格"],
    "property": ["序号", "姓名", "身份证号码", "坐落", "建筑面积", "房屋性质"],
    "business": ["序号", "姓名", "身份证号码", "统一社会信用代码", "身份"],
    "dibao": ["序号", "姓名", "身份证号码", "保障状态", "开始日期", "停保日期"],
    "disability": ["序号", "姓名", "身份证号码", "残疾等级"],
}
XLSX = {"vehicle", "property"}
MODEL_OF = {"death": "COMPARE_PAID_AFTER_DEATH", "payroll": "COMPARE_PAYROLL_MEMBER",
            "cadre_relatives": "COMPARE_CADRE_RELATIVE", "vehicle": "COMPARE_VEHICLE",
            "property": "COMPARE_COMMERCIAL_HOUSING", "business": "COMPARE_BUSINESS_OWNER",
            "dibao": "COMPARE_DIBAO_CONTRADICTS", "disability": "COMPARE_DISABILITY_CONTRADICTS"}
MODELS = (*MODEL_OF.values(), "COMPARE_DUPLICATE_PERSON")


@dataclass
class RegisterFile:
    kind: str
    department: str
    as_of: dt.date
    filename: str
    data: bytes
    rows: int


@dataclass
class RegisterPlant:
    """The register files to import and what the comparison models must find in them."""

    files: list[RegisterFile]
    truth: dict[str, Any] = field(repr=False)

    def write(self, directory: str | Path, truth_path: str | Path) -> list[Path]:
        """The files into ``directory``, the truth (with the files' names and hashes) to
        ``truth_path``; the files' paths."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for f in self.files:
            path = folder / f.filename
            path.write_bytes(f.data)
            paths.append(path)
        Path(truth_path).write_text(json.dumps(self.truth, ensure_ascii=False, indent=2,
                                               sort_keys=True) + "\n", encoding="utf-8")
        return paths


def id_15(number: str) -> str | None:
    """The first-generation 15-digit form of an 18-digit number born in the 1900s."""
    return number[:6] + number[8:17] if number[6:8] == "19" else None


def random_id(rng: random.Random, address: str | None = None) -> str:
    """A valid ID number of someone from elsewhere."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(29000))
    first17 = f"{address or rng.choice(ELSEWHERE)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + check_digit(first17)


class _Registers:
    def __init__(self, plan: _Planner, per_model: int, noise: int | dict[str, int]):
        self.plan = plan
        self.n = per_model
        self.noise = noise
        self.rng = random.Random(f"zhuisu-demo/{plan.seed}/registers")
        self.rows: dict[str, list[list[Any]]] = {k: [] for k in HEADERS}
        self.truth: dict[str, dict[str, list]] = {m: {"planted": [], "near_misses": []}
                                                  for m in MODELS}
        self.used: set[str] = set()  # ID numbers already in some register
        self.applied_on: dict[str, dt.date] = {}
        self.payments: dict[str, list[tuple[dt.date, str]]] = {}
        for e in plan.timeline:
            s = e.item
            if not isinstance(s, Step):
                continue
            if s.step == "Household.Applied":
                self.applied_on[s.subject] = dt.date.fromisoformat(s.content["effective_date"])
            elif s.step == "FundAccount.Disbursed" and s.content["payee_kind"] == "household":
                self.payments.setdefault(s.content["payee_id"], []).append(
                    (dt.date.fromisoformat(s.content["effective_date"]),
                     s.content["movement_id"]))
        registered = [h for h in plan.households if h.registered_on is not None]
        self.people = [(h, i) for h in registered for i in range(len(h.members))]
        self.rng.shuffle(self.people)
        self.planted_count = 0

    # drawing people ------------------------------------------------------------------
    def person(self, want: Any = None) -> tuple[_Household, int]:
        for k, (h, i) in enumerate(self.people):
            if h.id_numbers[i] in self.used or (want is not None and not want(h, i)):
                continue
            self.used.add(h.id_numbers[i])
            del self.people[k]
            return h, i
        raise ValueError("the demo county is too small to plant this many register matches")

    def number(self, h: _Household, i: int, *, planted: bool) -> tuple[str, str]:
        """The number as written in the file, and its form."""
        number = h.id_numbers[i]
        if planted:
            self.planted_count += 1
            short = id_15(number)
            if short and self.planted_count % 3 == 0:
                return short, "15"
        return number, "18"

    def add(self, kind: str, h: _Household, i: int, values: list[Any], *, planted: bool,
            model: str, match_id: str | None, **more: Any) -> None:
        written, form = self.number(h, i, planted=planted)
        rows = self.rows[kind]
        rows.append([len(rows) + 1, h.members[i]["name"], written, *values])
        item = {"register": kind, "row": len(rows) + 1, "household_id": h.id,
                "household_code": h.code, "id_hash": h.members[i]["id_number_hash"],
                "id_form": form, **more}
        if match_id is not None:
            item["match_id"] = match_id
        self.truth[model]["planted" if planted else "near_misses"].append(item)

    @staticmethod
    def key(h: _Household, i: int) -> str:
        return f"{h.id}:{h.members[i]['id_number_hash'][:16]}"

    # the models ------------------------------------------------------------------------
    def deaths(self) -> None:
        model = MODEL_OF["death"]
        paid = lambda h, i: bool(self.payments.get(h.id))  # noqa: E731
        for k in range(2 * self.n):
            planted = k < self.n
            h, i = self.person(paid)
            pays = sorted(self.payments[h.id])
            last = pays[-1][0]
            died = last - dt.timedelta(days=1) if planted else last
            after = [mid for day, mid in pays if day > died]
            ids = [f"{model}:{mid}:{h.members[i]['id_number_hash'][:16]}" for mid in after]
            self.add("death", h, i, [died.isoformat()], planted=planted, model=model,
                     match_id=None, match_ids=ids, movement_ids=after,
                     date_of_death=died.isoformat())

    def member_rows(self, kind: str, planted_values: Any, near_values: Any,
                    near_share: int = 1) -> None:
        model = MODEL_OF[kind]
        for _ in range(self.n):
            h, i = self.person()
            self.add(kind, h, i, planted_values(), planted=True, model=model,
                     match_id=f"{model}:{self.key(h, i)}")
        for _ in range(self.n * near_share):
            if near_values is None:
                break
            h, i = self.person()
            self.add(kind, h, i, near_values(), planted=False, model=model, match_id=None)

    def cadres(self) -> None:
        model = MODEL_OF["cadre_relatives"]
        for k in range(2 * self.n):
            planted = k < self.n
            h, i = self.person()
            cadre = self.plan.official_id_numbers.get(f"{h.village}-director") or \
                next(iter(self.plan.official_id_numbers.values()))
            relation = self.rng.choice(("兄弟", "姐妹", "祖父母")) if planted else \
                self.rng.choice(("表兄弟", "堂兄弟", "表姐妹"))
            self.add("cadre_relatives", h, i, [cadre, "村委会主任", relation],
                     planted=planted, model=model,
                     match_id=f"{model}:{self.key(h, i)}" if planted else None,
                     relation=relation)

    def dibao(self) -> None:
        model = MODEL_OF["dibao"]
        for k in range(3 * self.n):
            planted = k < self.n
            h, i = self.person(lambda h, i: h.id in self.applied_on)
            applied = self.applied_on[h.id]
            start = applied - dt.timedelta(days=self.rng.randint(400, 900))
            if planted:
                values = ["取消", start.isoformat(),
                          (applied - dt.timedelta(days=self.rng.randint(0, 60))).isoformat()]
            elif k < 2 * self.n:
                values = ["停保", start.isoformat(),
                          (applied + dt.timedelta(days=1)).isoformat()]
            else:
                values = ["在保", start.isoformat(), ""]
            self.add("dibao", h, i, values, planted=planted, model=model,
                     match_id=f"{model}:{self.key(h, i)}" if planted else None,
                     applied_on=applied.isoformat())

    def duplicates(self) -> None:
        """New households of the same village, each listing a member of a registered one
        (it applies after that one: the village round's last application day)."""
        model = "COMPARE_DUPLICATE_PERSON"
        plan = self.plan
        for _ in range(self.n):
            h0, i = self.person(lambda h, i: h.members[i]["relation"] != "head" and
                                h.code[-4:-3] != "9")
            v = h0.village
            number = 9000 + plan.next(f"planted-household:{v}")
            h = plan.new_household(v, h0.township, number, self.rng)
            moved = dict(h0.members[i], relation="other")
            h.members.append(moved)
            h.id_numbers.append(h0.id_numbers[i])
            dates = plan.village_dates[v]
            steps = plan.identify(h, dates, rng=self.rng,
                                  applied=dates.base + dt.timedelta(days=10))
            for s in steps:
                plan.add(s, village=v)
            plan.households.append(h)
            for j in range(len(h.members) - 1):  # its own people are in no register
                self.used.add(h.id_numbers[j])
            self.truth[model]["planted"].append({
                "register": None, "household_id": h.id, "household_code": h.code,
                "other_household_id": h0.id, "other_household_code": h0.code,
                "id_hash": moved["id_number_hash"],
                "match_id": f"{model}:{h.id}:{moved['id_number_hash'][:16]}"})

    def disability(self) -> None:
        """Every 因残 household in the register but ``n`` (drawn); kept last, when every
        household is known."""
        model = MODEL_OF["disability"]
        disabled = [h for h in self.plan.households
                    if "disability" in h.causes and h.registered_on is not None]
        left_out = set(h.code for h in self.rng.sample(disabled, min(self.n, len(disabled))))
        for h in disabled:
            if h.code in left_out:
                self.truth[model]["planted"].append({
                    "register": "disability", "household_id": h.id, "household_code": h.code,
                    "id_hash": None, "match_id": f"{model}:{h.id}"})
                continue
            i = next((j for j in range(len(h.members)) if h.id_numbers[j] not in self.used),
                     0)
            self.used.add(h.id_numbers[i])
            self.add("disability", h, i, [self.rng.choice(("一级", "二级", "三级", "四级"))],
                     planted=False, model=model, match_id=None)

    # noise and files -------------------------------------------------------------------
    def noise_rows(self, kind: str, count: int) -> None:
        rng, rows = self.rng, self.rows[kind]
        seen: set[str] = set()
        for _ in range(count):
            number = random_id(rng)
            while number in seen:
                number = random_id(rng)
            seen.add(number)
            values = {
                "death": lambda: [(AS_OF - dt.timedelta(days=rng.randrange(1500))).isoformat()],
                "payroll": lambda: [rng.choice(("县教育局", "县卫健局", "县医院", "乡镇中学")),
                                    rng.choice(("教师", "医生", "科员", ""))],
                "cadre_relatives": lambda: [random_id(rng), "村党支部书记",
                                            rng.choice(("配偶", "儿子", "兄弟"))],
                "vehicle": lambda: [f"贵E{rng.randrange(10**5):05d}", "小型轿车",
                                    f"{rng.randrange(30000, 300000)}.00"],
                "property": lambda: ["县城某小区", f"{rng.randrange(50, 150)}", "商品房"],
                "business": lambda: [f"91522625MA{rng.randrange(10**8):08d}",
                                     rng.choice(("法定代表人", "股东"))],
                "dibao": lambda: ["在保", "2020-01-01", ""],
                "disability": lambda: ["二级"],
            }[kind]()
            rows.append([len(rows) + 1, "外县人员", number, *values])

    def files(self) -> list[RegisterFile]:
        out = []
        for kind, header in HEADERS.items():
            rows = self.rows[kind]
            if kind in XLSX:
                from openpyxl import Workbook

                wb = Workbook(write_only=True)
                ws = wb.create_sheet(DEPARTMENTS[kind])
                ws.append(header)
                for r in rows:
                    ws.append([str(x) for x in r])
                buf = io.BytesIO()
                wb.save(buf)
                data, name = buf.getvalue(), f"{kind}.xlsx"
            else:
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
                w.writerow(header)
                w.writerows(rows)
                data, name = buf.getvalue().encode("utf-8"), f"{kind}.csv"
            out.append(RegisterFile(kind, DEPARTMENTS[kind], AS_OF, name, data, len(rows)))
        return out


def plant_registers(plan: _Planner, per_model: int,
                    noise: int | dict[str, int] = 20) -> RegisterPlant:
    """Plant ``per_model`` register matches of each comparison model in ``plan`` (new
    households for the duplicate-person model are added to it) and write the registers,
    with ``noise`` rows of people from elsewhere per register (or per kind, a dict)."""
    if per_model < 1:
        raise ValueError("per_model is at least 1")
    r = _Registers(plan, per_model, noise)
    r.duplicates()
    r.deaths()
    r.member_rows("payroll", lambda: [r.rng.choice(("县教育局", "县卫健局", "县水务局")),
                                      r.rng.choice(("教师", "科员", "工勤人员"))], None)
    r.cadres()
    r.member_rows("vehicle",
                  lambda: [f"贵E{r.rng.randrange(10**5):05d}", "小型轿车",
                           f"{r.rng.randrange(80_000, 200_000)}.00"],
                  lambda: [f"贵E{r.rng.randrange(10**5):05d}", "小型轿车", "49999.00"])
    r.member_rows("property",
                  lambda: ["县城锦绣小区", str(r.rng.randrange(60, 140)), "商品房"],
                  lambda: r.rng.choice((["县城锦绣小区", "59.5", "商品房"],
                                        ["本村", "120", "自建房"])), near_share=2)
    r.member_rows("business",
                  lambda: [f"92522625MA{r.rng.randrange(10**8):08d}",
                           r.rng.choice(("法定代表人", "股东"))],
                  lambda: [f"92522625MA{r.rng.randrange(10**8):08d}", "监事"])
    r.dibao()
    r.disability()
    for kind in HEADERS:
        r.noise_rows(kind, noise.get(kind, 0) if isinstance(noise, dict) else noise)
    files = r.files()
    truth = {"format": FORMAT, "seed": plan.seed, "size": plan.size, "per_model": per_model,
             "identified_by": IDENTIFIED_BY.isoformat(),
             "files": [{"kind": f.kind, "department": f.department,
                        "as_of": f.as_of.isoformat(), "filename": f.filename, "rows": f.rows,
                        "sha256": hashlib.sha256(f.data).hexdigest()} for f in files],
             "models": r.truth}
    return RegisterPlant(files, truth)


def expected_matches(truth: dict[str, Any]) -> dict[str, set[str]]:
    """Per model, the match ids the planted items must raise."""
    out: dict[str, set[str]] = {}
    for model, t in truth["models"].items():
        ids: set[str] = set()
        for item in t["planted"]:
            ids.update(item.get("match_ids") or [item["match_id"]])
        out[model] = ids
    return out


def score(truth: dict[str, Any], matches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: planted, found, missed, false alarms, precision, recall."""
    expected = expected_matches(truth)
    by_model: dict[str, set[str]] = {m: set() for m in expected}
    for m in matches:
        by_model.setdefault(m["model_id"], set()).add(m["match_id"])
    out = {}
    for model, want in expected.items():
        got = by_model.get(model, set())
        found = len(want & got)
        out[model] = {"planted": len(want), "found": found, "missed": len(want - got),
                      "false_alarms": len(got - want),
                      "precision": found / len(got) if got else None,
                      "recall": found / len(want) if want else None}
    return out
