"""Demo data (示范数据): a synthetic county and one year of its business, through the real path.

Every procedure step and money event is a command signed with Ed25519 by the officials whose
positions the step's rule asks for (``domain.positions``) and run by ``Zhuisu.execute``, so
the demo meets every check a real client meets and its events verify like real ones.
Officials' keys are derived from the seed and the official's code (``official_key``), so a
later benchmark or test can sign further commands as demo officials (``demo_keys``).

The same seed gives the same events: codes and ids are fixed or ``uuid5``, amounts, names
and dates come from ``random.Random(seed)``, and Ed25519 signatures are deterministic.  Record
time is simulated too (``RecordClock``): each step is recorded a seeded 0–3 days after its
business date, and the log is written in date order a month at a time (``_Planner.batches``),
so it reads like a year kept as it happened: nothing backdated, no money idle on the log
clock, no payment the rules of docs/INSPECTION.md would question.  ``plant`` adds a known
number of each misconduct those rules look for (``demo.misconduct``), with the truth.

Shape: 示范省 (990000) → 示范市 (990100) → 追溯县 (990121) → townships → villages.  The year
2025: identification of every applicant (申请 → 民主评议 → 核实 → 第一次公示 → 乡镇审核 →
第二次公示 → 县级审批; some objections, ~1 % voted down), one 帮扶责任人 per ≈5 households,
central and provincial funds received at the province and allocated down to the townships in
quarterly tranches, payments to households (到户) and to county-approved village projects and
their suppliers, Q4 exits (~25 %) through the full exit procedure, a few removals (清退)
with their payments recovered, relapses (返贫), partial recoveries and reversals (冲正).

Why one file: one planner of one synthetic year; its parts (shape, officials, households,
money) share the seeded random stream, whose order fixes every generated value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, uuid5

import structlog

from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.household import EXIT_CHECKS, INCOME_LINES_FEN, Household
from domain.identity import check_digit
from domain.official import Official
from domain.project import Project
from domain.region import stable_id
from domain.signing import SigningKey, b64, sign_command

log = structlog.get_logger("zhuisu.demo")

YEAR = 2025
PROVINCE, CITY, COUNTY = "990000", "990100", "990121"
KEYS_VALID_FROM = dt.date(2024, 12, 1)
SET_UP_ON = KEYS_VALID_FROM  # record date of the regions, units, officials and accounts
POSITIONS_FROM = dt.date(2024, 1, 1)
DEMO_NAMESPACE = uuid5(NAMESPACE_URL, "https://zhuisu.example/demo")


@dataclass(frozen=True)
class Shape:
    townships: int
    villages_per_township: int
    households_per_village: int


SIZES: dict[str, Shape] = {
    "tiny": Shape(1, 2, 10),
    "small": Shape(1, 7, 180),
    "county": Shape(12, 7, 240),
}
CUSTOM_SIZE = re.compile(r"^([1-9][0-9]?)x([1-9][0-9]?)x([1-9][0-9]{0,3})$")
"""Or ``TxVxH``: T townships of V villages of H households (e.g. ``2x3x40``)."""

# (code suffix, position kind, unit suffix) for the officials of each level
POSTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "province": (("poverty-director", "province_poverty_office_director", "PO"),
                 ("finance-director", "province_finance_director", "FIN"),
                 ("finance-officer", "province_finance_officer", "FIN")),
    "city": (("poverty-director", "city_poverty_office_director", "PO"),
             ("finance-director", "city_finance_director", "FIN"),
             ("finance-officer", "city_finance_officer", "FIN")),
    "county": (("party-secretary", "county_party_secretary", "PC"),
               ("magistrate", "county_magistrate", "GOV"),
               ("deputy-magistrate", "deputy_county_magistrate", "GOV"),
               ("poverty-director", "county_poverty_office_director", "PO"),
               ("poverty-staff-1", "county_poverty_office_staff", "PO"),
               ("poverty-staff-2", "county_poverty_office_staff", "PO"),
               ("poverty-staff-3", "county_poverty_office_staff", "PO"),
               ("finance-director", "county_finance_director", "FIN"),
               ("finance-officer-1", "county_finance_officer", "FIN"),
               ("finance-officer-2", "county_finance_officer", "FIN")),
    "township": (("party-secretary", "township_party_secretary", "PC"),
                 ("head", "township_head", "GOV"),
                 ("poverty-officer", "township_poverty_officer", "GOV"),
                 ("finance-accountant", "township_finance_accountant", "FIN")),
    "village": (("party-secretary", "village_party_secretary", "VC"),
                ("director", "village_director", "VC"),
                ("first-secretary", "village_first_secretary", "WT"),
                ("accountant", "village_accountant", "VC"),
                ("work-team", "work_team_member", "WT")),
}
UNITS = {"PO": ("poverty_office", "扶贫办"), "FIN": ("finance_bureau", "财政"),
         "PC": ("party_committee", "党委"), "GOV": ("government", "人民政府"),
         "VC": ("village_committee", "村民委员会"), "WT": ("work_team", "驻村工作队"),
         "AID": ("government", "县直结对帮扶单位")}
HOUSEHOLDS_PER_HELPER = 5  # 人均包联5户
# Province's receipt days of each fund source's quarterly tranches; the townships' accounts
# have the money ARRIVES_AFTER days later (province → city → county → township).
TRANCHES = {"central": (dt.date(2025, 1, 10), dt.date(2025, 4, 10), dt.date(2025, 7, 10),
                        dt.date(2025, 10, 10)),
            "provincial": (dt.date(2025, 1, 15), dt.date(2025, 4, 15), dt.date(2025, 7, 15),
                           dt.date(2025, 10, 15))}
ARRIVES_AFTER = 15
MONEY_BACK = frozenset({"FundAccount.Recovered", "FundAccount.Reversed"})
# Commands per transaction at most (about 3 MB of events); far larger saves hang
# eventsourcing 9.5's pipelined PostgreSQL insert (≈8 MB and up).
MAX_TRANSACTION = 4000
# The log clock (greatest business date so far) must not run far ahead of the money and the
# deadlines (see ``_Planner.batches``): identification until IDENTIFIED_BY is written one
# village at a time (it moves no money), the rest a calendar month at a time, so the clock
# runs at most SPAN_DAYS ahead of a step still to come in the same transaction.
IDENTIFIED_BY = dt.date(2025, 4, 10)
SPAN_DAYS = 31

TOWNSHIP_NAMES = "清水 石门 白岩 龙潭 高坡 新寨 桃源 云雾 青山 河口 双溪 凤凰 马场 平寨 羊坪 金竹".split()
VILLAGE_NAMES = [a + b for a in "上下大小新老东西南北中前后" for b in "坪寨沟湾坝岭冲"]
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
            "蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹")
GIVEN = "伟芳娜英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华国红梅玉德福贵春花金凤海燕志翠萍文学成林辉鹏斌宇浩"
CAUSES = {"illness": 42, "disability": 14, "lack_of_funds": 10, "lack_of_skills": 9,
          "lack_of_labour": 8, "education": 6, "disaster": 3, "lack_of_land": 2,
          "poor_transport": 2, "lack_of_motivation": 2, "lack_of_water": 1, "other": 1}
REMOVAL_REASONS = ("家庭成员为财政供养人员", "家庭购置小汽车", "家庭成员在城镇购买商品房",
                   "家庭成员注册经营公司")


# ---------------------------------------------------------------------------------------
# layout and keys (pure; no store needed)

def _d(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def _later(day: dt.date, days: int) -> dt.date:
    return min(day + dt.timedelta(days=days), _d(12, 31))


def townships(size: str) -> list[str]:
    return [f"{COUNTY}{101 + t:03d}" for t in range(_shape(size).townships)]


def villages(size: str) -> dict[str, list[str]]:
    """Township code → its village codes."""
    n = _shape(size).villages_per_township
    return {t: [f"{t}{201 + v:03d}" for v in range(n)] for t in townships(size)}


def official_codes(size: str) -> list[tuple[str, str, str, str]]:
    """(official code, position kind, region code, unit code) of every signing official.

    Codes read ``<region code>-<post>``, e.g. ``990121101-head`` is the head of the first
    township and ``990121-deputy-magistrate`` the county's deputy magistrate.
    """
    out = []
    regions = [("province", PROVINCE), ("city", CITY), ("county", COUNTY)]
    for t, vs in villages(size).items():
        regions += [("township", t)] + [("village", v) for v in vs]
    for level, region in regions:
        for post, kind, unit in POSTS[level]:
            out.append((f"{region}-{post}", kind, region, f"{region}-{unit}"))
    return out


def official_key(seed: int, code: str) -> SigningKey:
    """The demo official's Ed25519 key: derived from the seed and the official's code."""
    return SigningKey.from_seed(f"zhuisu-demo/{seed}/{code}".encode())


def demo_keys(seed: int = 20251, size: str = "small") -> dict[str, SigningKey]:
    """Official code → signing key, for every signing official of a demo built with ``seed``."""
    return {code: official_key(seed, code) for code, *_ in official_codes(size)}


def _shape(size: str) -> Shape:
    if size in SIZES:
        return SIZES[size]
    custom = CUSTOM_SIZE.match(size)
    if custom is None or int(custom[3]) > 8999:  # planted households are numbered 9001…
        raise ValueError(f"unknown demo size {size!r}; one of {sorted(SIZES)} or TxVxH "
                         "(townships x villages per township x households per village up to "
                         "8999, e.g. 2x3x40)")
    return Shape(int(custom[1]), int(custom[2]), int(custom[3]))


# ---------------------------------------------------------------------------------------
# the plan: administrative calls and signed steps, in the order they are run

class Admin(NamedTuple):
    verb: str
    args: tuple
    kwargs: Mapping[str, Any] | None = None


class Step(NamedTuple):
    day: dt.date
    step: str
    subject: str
    content: dict[str, Any]
    signers: tuple[tuple[str, str], ...]  # (official code, role)


@dataclass
class _Household:
    code: str
    id: str
    village: str
    township: str
    head: str
    members: list[dict[str, str]]
    causes: list[str]
    income: int
    status: str = "applied"
    registered_on: dt.date | None = None
    until: dt.date = _d(12, 31)  # last day for aid that stops at exit or removal
    id_numbers: list[str] = field(default_factory=list, repr=False)  # of members, in order
    exit_approved: dt.date | None = None
    relapsed_on: dt.date | None = None


class VillageDates(NamedTuple):
    """The dates of a village's identification round (one meeting, one notice, …)."""

    base: dt.date
    appraised: dt.date
    notice1: dt.date
    review: dt.date
    notice2: dt.date
    approve: dt.date
    announcement: str


@dataclass
class DemoSummary:
    """What ``build_demo`` did, and the key material to sign further commands as demo officials."""

    size: str
    seed: int
    households: int
    officials: int
    helpers: int
    projects: int
    payments: int
    events_written: int
    seconds: float
    events_per_second: float
    final_status: dict[str, str]  # household code → status at the end of the year
    keys: dict[str, SigningKey] = field(repr=False)  # official code → key
    accounts: dict[str, str] = field(repr=False)  # "<region>/<fund source>" → account id
    plant: int = 0  # misconduct planted per kind (``demo.misconduct``)
    truth: dict[str, Any] = field(default_factory=dict, repr=False)  # what the rules must find
    registers: Any = field(default=None, repr=False)  # demo.registers.RegisterPlant, if planted

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(Counter(self.final_status.values()))

    def official_id(self, code: str) -> str:
        return str(Official.create_id(code))

    def sign(self, step: str, subject: str, content: dict[str, Any],
             signers: list[tuple[str, str]]) -> dict[str, Any]:
        """A command for ``Zhuisu.execute`` signed by demo officials [(code, role), ...]."""
        return sign_command(step, subject, content,
                            [(self.official_id(c), self.keys[c], r) for c, r in signers])


class StoreNotEmpty(RuntimeError):
    """The demo writes a fresh synthetic county; it refuses a store that already holds events."""


class DemoStepRefused(RuntimeError):
    """A planned step was refused by the domain: a bug in the demo plan or in the rules."""


def store_is_empty(app: Zhuisu) -> bool:
    return not app.recorder.max_notification_id()


class Entry(NamedTuple):
    """One item of the year as it is recorded: by record date ``at`` (the business date,
    unless the item is entered late), money coming in before the day's other business."""

    at: dt.date
    rank: int  # 0: funding and set-up of the day, 1: the rest
    seq: int  # plan order within the day
    item: Admin | Step
    village: str | None  # identification steps: written with their village's round


class _Planner:
    """Draws the synthetic county and its year from one seeded random stream."""

    def __init__(self, size: str, seed: int, app: Zhuisu):
        self.shape = _shape(size)
        self.size = size
        self.seed = seed
        self.rng = random.Random(seed)
        self.app = app
        self.people: set[str] = set()
        self.counters: dict[str, int] = defaultdict(int)
        self.households: list[_Household] = []
        self.helpers: dict[str, list[str]] = {}
        self.official_id_numbers: dict[str, str] = {}  # official code → ID number
        self.village_dates: dict[str, VillageDates] = {}
        self.setup: list[Admin] = []
        self.timeline: list[Entry] = []  # everything after the set-up, in any order
        self.payments: list[dict[str, Any]] = []  # household payments, for recoveries
        self.projects = 0
        self.accounts: dict[str, tuple[str, str]] = {}  # account id → (region, fund source)
        self.names = {PROVINCE: "示范省", CITY: "示范市", COUNTY: "追溯县"}  # region code → name

    # -- small draws ----------------------------------------------------------------
    def next(self, name: str) -> int:
        self.counters[name] += 1
        return self.counters[name]

    def movement_id(self, kind: str = "movement") -> str:
        return str(uuid5(DEMO_NAMESPACE, f"{self.seed}:{kind}:{self.next(kind)}"))

    def name(self, surname: str | None = None, rng: random.Random | None = None) -> str:
        rng = rng or self.rng
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        return (surname or rng.choice(SURNAMES)) + given

    def id_number(self, year: int, male: bool, rng: random.Random | None = None) -> str:
        """A valid, unique 18-character ID number (GB 11643) with the county's address code."""
        rng = rng or self.rng
        while True:
            birth = dt.date(year, rng.randint(1, 12), rng.randint(1, 28))
            seq = rng.randrange(0, 1000, 2) + (1 if male else 0)
            first17 = f"{COUNTY}{birth:%Y%m%d}{seq:03d}"
            number = first17 + check_digit(first17)
            if number not in self.people:
                self.people.add(number)
                return number

    def amount(self, low_yuan: int, high_yuan: int, step_yuan: int = 100,
               rng: random.Random | None = None) -> int:
        return (rng or self.rng).randrange(low_yuan, high_yuan + 1, step_yuan) * 100

    def account(self, region: str, source: str) -> str:
        aid = str(FundAccount.create_id(region, source))
        self.accounts[aid] = (region, source)
        return aid

    def add(self, item: Step | Admin, at: dt.date | None = None, first: bool = False,
            village: str | None = None) -> None:
        """Plan ``item`` to be recorded on ``at`` (a step: its business date by default);
        ``village``: a step of that village's identification round."""
        if at is None:
            assert isinstance(item, Step), "an administrative call needs its record date"
            at = item.day
        self.timeline.append(Entry(at, 0 if first else 1, self.next("seq"), item,
                                   village if at < IDENTIFIED_BY else None))

    def batches(self) -> list[list[tuple[dt.date, Admin | Step]]]:
        """The transactions, as (record date, item), at most ``MAX_TRANSACTION`` commands
        each: the set-up; each village's identification round; the rest a calendar month
        of record dates at a time; in order of their first record date.

        A transaction's events enter the log together; one spanning months, if stored other
        than in command order, would put late business dates before early ones and move
        the log clock ahead of the money still to be spent and the deadlines still to come
        (资金滞留 and 整改逾期 that are not).  ``Zhuisu.batch`` keeps command order; a
        month keeps any transaction within ``SPAN_DAYS`` (money is spent within a quarter of its arrival, well inside
        the idle threshold); the identification rounds move no money and end before the
        first payment (``IDENTIFIED_BY``), and one transaction per village loads each
        household once for them.
        """
        groups: dict[tuple[Any, ...], list[Entry]] = defaultdict(list)
        for e in sorted(self.timeline):
            key = ("village", e.village) if e.village else ("month", e.at.year, e.at.month)
            groups[key].append(e)
        out = [[(SET_UP_ON, a) for a in self.setup]]
        for group in sorted(groups.values(), key=lambda g: g[0][:3]):
            for i in range(0, len(group), MAX_TRANSACTION):
                out.append([(e.at, e.item) for e in group[i:i + MAX_TRANSACTION]])
        return out

    # -- administration -------------------------------------------------------------
    def plan_setup(self) -> None:
        s = self.setup.append
        names = self.names
        s(Admin("create_region", (PROVINCE, names[PROVINCE], "province", None)))
        s(Admin("create_region", (CITY, names[CITY], "city", PROVINCE)))
        s(Admin("create_region", (COUNTY, names[COUNTY], "county", CITY)))
        for i, (t, vs) in enumerate(villages(self.size).items()):
            names[t] = TOWNSHIP_NAMES[i % len(TOWNSHIP_NAMES)] + ("镇" if i % 3 else "乡")
            s(Admin("create_region", (t, names[t], "township", COUNTY)))
            for j, v in enumerate(vs):
                names[v] = VILLAGE_NAMES[j % len(VILLAGE_NAMES)] + "村"
                s(Admin("create_region", (v, names[v], "village", t)))
        units: set[str] = set()
        for code, kind, region, unit in official_codes(self.size):
            if unit not in units:
                units.add(unit)
                ukind, uname = UNITS[unit.rsplit("-", 1)[1]]
                s(Admin("establish_unit", (unit, names[region] + uname, ukind, region)))
            male = self.rng.random() < 0.75
            name = self.name()
            number = self.id_number(self.rng.randint(1965, 1995), male)
            self.official_id_numbers[code] = number
            s(Admin("register_official", (code, name, unit, number)))
            s(Admin("take_position", (code, kind, region, POSITIONS_FROM)))
            s(Admin("register_key", (code, b64(official_key(self.seed, code).public_bytes),
                                     KEYS_VALID_FROM)))
        aid_unit, (ukind, uname) = f"{COUNTY}-AID", UNITS["AID"]
        s(Admin("establish_unit", (aid_unit, names[COUNTY] + uname, ukind, COUNTY)))
        for vs in villages(self.size).values():
            for v in vs:
                n = -(-self.shape.households_per_village // HOUSEHOLDS_PER_HELPER)
                self.helpers[v] = [f"{v}-helper-{k + 1:02d}" for k in range(n)]
                for code in self.helpers[v]:
                    s(Admin("register_official", (code, self.name(), aid_unit, self.id_number(
                        self.rng.randint(1968, 1998), self.rng.random() < 0.6))))
        for region in [PROVINCE, CITY, COUNTY, *townships(self.size)]:
            for source in ("central", "provincial"):
                s(Admin("open_account", (region, source, "")))

    # -- identification 精准识别 --------------------------------------------------------
    def new_household(self, village: str, township: str, i: int,
                      rng: random.Random | None = None) -> _Household:
        rng = rng or self.rng
        size = rng.choices((1, 2, 3, 4, 5, 6), (12, 22, 22, 22, 14, 8))[0]
        surname = rng.choice(SURNAMES)
        head_year = rng.randint(1945, 1992)
        head_male = rng.random() < 0.8
        people = [(self.name(surname, rng), "head", head_year, head_male)]
        if size >= 2 and rng.random() < 0.85:
            people.append((self.name(None, rng), "spouse", head_year + rng.randint(-5, 5),
                           not head_male))
        if len(people) < size and head_year >= 1972 and rng.random() < 0.5:
            people.append((self.name(surname, rng), "parent", head_year - rng.randint(20, 32),
                           rng.random() < 0.5))
        while len(people) < size:
            old = head_year < 1965 and len(people) == size - 1
            year = min(2024, head_year + (rng.randint(45, 60) if old else rng.randint(20, 36)))
            people.append((self.name(surname, rng), "grandchild" if old else "child", year,
                           rng.random() < 0.5))
        numbers = [self.id_number(y, m, rng) for _, _, y, m in people]
        members = [{"name": n, "relation": rel, "id_number_hash": self.app.hash_id(number)}
                   for (n, rel, _, _), number in zip(people, numbers, strict=True)]
        main = rng.choices(list(CAUSES), list(CAUSES.values()))[0]
        causes = [main]
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            c = rng.choices(list(CAUSES), list(CAUSES.values()))[0]
            if c not in causes:
                causes.append(c)
        code = f"H{village}{i:04d}"
        return _Household(code=code, id=str(Household.create_id(code)), village=village,
                          township=township, head=people[0][0], members=members, causes=causes,
                          income=self.amount(2200, 6800, 10, rng), id_numbers=numbers)

    def plan_identification(self) -> None:
        per_village = self.shape.households_per_village
        rejected_share = max(1, round(0.01 * per_village))
        for vi, (t, v) in enumerate((t, v) for t, vs in villages(self.size).items() for v in vs):
            base = _d(1, 6) + dt.timedelta(days=(vi % 20) * 2)
            hs = [self.new_household(v, t, i + 1) for i in range(per_village)]
            voted_down = {h.code for h in self.rng.sample(hs, rejected_share)}
            objected = self.rng.sample([h for h in hs if h.code not in voted_down],
                                       max(2, round(0.02 * per_village)))
            upheld = {h.code for h in objected[:max(1, round(len(objected) / 4))]}
            objected_codes = {h.code for h in objected}
            appraised = base + dt.timedelta(days=14)
            notice1 = appraised + dt.timedelta(days=10)
            review = notice1 + dt.timedelta(days=7 + self.rng.randint(1, 3))
            notice2 = review + dt.timedelta(days=2)
            approve = notice2 + dt.timedelta(days=7 + self.rng.randint(1, 3))
            announcement = f"追县扶贫〔{YEAR}〕{self.next('announcement')}号"
            dates = self.village_dates[v] = VillageDates(base, appraised, notice1, review,
                                                         notice2, approve, announcement)
            for h in hs:
                for s in self.identify(h, dates, h.code in voted_down, h.code in objected_codes,
                                       h.code in upheld):
                    self.add(s, village=v)
            self.households += hs

    def identify(self, h: _Household, dates: VillageDates, voted_down: bool = False,
                 objected: bool = False, upheld: bool = False, *,
                 rng: random.Random | None = None, applied: dt.date | None = None,
                 bank_account_hash: str | None = None) -> list[Step]:
        """The identification steps of ``h`` in its village's round (``dates``)."""
        rng, v, t = rng or self.rng, h.village, h.township
        base, appraised, notice1, review, notice2, approve, announcement = dates
        steps = []

        def step(day: dt.date, name: str, content: dict[str, Any],
                 *signers: tuple[str, str]) -> None:
            steps.append(Step(day, name, h.id, {**content, "effective_date": day.isoformat()},
                              signers))

        clerk = rng.choice(("accountant", "work-team"))
        step(applied or base + dt.timedelta(days=rng.randint(0, 9)), "Household.Applied", {
            "household_code": h.code, "village_code": v, "head_name": h.head,
            "members": h.members, "main_cause": h.causes[0], "secondary_causes": h.causes[1:],
            "income_per_capita_fen": h.income,
            "bank_account_hash": bank_account_hash or self.bank_account_hash(h)},
            (f"{v}-{clerk}", "preparer"))
        total = rng.randint(25, 45)
        votes_for = total // 2 - rng.randint(0, 5) if voted_down else total - rng.randint(0, 4)
        votes_against = rng.randint(0, total - votes_for)
        step(appraised, "Household.AppraisedByVillage",
             {"votes_for": votes_for, "votes_against": votes_against, "votes_total": total},
             (f"{v}-accountant", "preparer"), (f"{v}-party-secretary", "approver"))
        if voted_down:
            h.status = "rejected"
            return steps
        step(appraised + dt.timedelta(days=rng.randint(2, 6)), "Household.VerifiedByVillage",
             {"findings": f"入户核实：家庭人口{len(h.members)}人，人均纯收入{h.income // 100}元，"
                          "致贫原因属实"},
             (f"{v}-first-secretary", "reviewer"), (f"{v}-director", "approver"))
        step(notice1, "Household.NoticePosted", {"round": "first", "days": 7},
             (f"{v}-work-team", "preparer"))
        if objected:
            oid = f"{h.code}-O1"
            step(_later(notice1, rng.randint(1, 3)), "Household.ObjectionRaised",
                 {"objection_id": oid, "summary": "村民反映该户家庭成员常年在外务工，收入较高"},
                 (f"{v}-accountant", "preparer"))
            step(_later(notice1, rng.randint(4, 6)), "Household.ObjectionResolved", {
                "objection_id": oid, "upheld": upheld,
                "resolution": "经核实，反映情况属实，取消评定资格" if upheld
                else "经入户核实，务工收入不稳定，反映情况不属实"},
                (f"{t}-poverty-officer", "reviewer"))
            if upheld:
                h.status = "rejected"
                return steps
        step(review, "Household.ReviewedByTownship", {"opinion": "经审核，符合建档立卡识别标准"},
             (f"{t}-poverty-officer", "preparer"), (f"{t}-head", "approver"))
        step(notice2, "Household.NoticePosted", {"round": "second", "days": 7},
             (f"{v}-work-team", "preparer"))
        step(approve, "Household.ApprovedByCounty", {"announcement_no": announcement},
             (f"{COUNTY}-poverty-staff-{rng.randint(1, 3)}", "preparer"),
             (f"{COUNTY}-poverty-director", "reviewer"),
             (f"{COUNTY}-deputy-magistrate", "approver"))
        helpers = self.helpers[v]
        helper = helpers[min(len(helpers) - 1, int(h.code[-4:]) * len(helpers)
                             // (self.shape.households_per_village + 1))]
        step(_later(approve, rng.randint(3, 10)), "Household.HelperAssigned",
             {"official_id": str(Official.create_id(helper))},
             (f"{t}-party-secretary", "approver"))
        h.status, h.registered_on = "registered", approve
        return steps

    def bank_account_hash(self, h: _Household) -> str:
        number = f"6217{self.seed % 10**4:04d}{int(h.code[1:]) % 10**11:011d}"
        return hmac.new(self.app.id_pepper, f"bank-account:{number}".encode(),
                        hashlib.sha256).hexdigest()

    # -- the year's business --------------------------------------------------------
    def plan_year(self) -> None:
        registered = [h for h in self.households if h.status == "registered"]
        exits = self.choose_exits(registered)
        exiting = {h.code for h in exits}
        removed = self.rng.sample([h for h in registered if h.code not in exiting],
                                  max(1, round(0.005 * len(registered))))
        for h in removed:
            self.plan_removal(h)
        failing = {h.code for h in exits[:max(1, round(0.02 * len(exits)))]}
        exited = [h for h in exits if self.plan_exit(h, h.code in failing)]
        for h in self.rng.sample(exited, max(1, round(0.02 * len(exited)))):
            self.plan_relapse(h)
        for h in registered:
            self.plan_household_payments(h)
        self.plan_projects(registered)
        self.plan_corrections()
        self.plan_annual_reviews(registered)

    def choose_exits(self, registered: list[_Household]) -> list[_Household]:
        """~25 % exit in Q4; households poor through illness or disability less often."""
        def weight(h: _Household) -> float:
            return 0.5 if h.causes[0] in ("illness", "disability") else 1.0
        keyed = sorted(registered, key=lambda h: self.rng.random() ** (1 / weight(h)), reverse=True)
        return keyed[:max(1, round(0.25 * len(registered)))]

    def plan_removal(self, h: _Household) -> None:
        day = _d(7, 1) + dt.timedelta(days=self.rng.randint(0, 85))
        self.add(self.removal(h, day, self.rng.choice(REMOVAL_REASONS)))
        h.status, h.until = "removed", day - dt.timedelta(days=1)

    @staticmethod
    def removal(h: _Household, day: dt.date, reason: str) -> Step:
        """清退, signed by the township and the county's deputy magistrate."""
        return Step(day, "Household.RemovedFromRegister", h.id, {
            "effective_date": day.isoformat(), "reason": reason},
            ((f"{h.township}-poverty-officer", "preparer"), (f"{h.township}-head", "reviewer"),
             (f"{COUNTY}-deputy-magistrate", "approver")))

    def plan_exit(self, h: _Household, voted_down: bool) -> bool:
        village_no = int(h.village[-3:]) + int(h.township[-3:])
        steps = self.exit_steps(h, _d(10, 9) + dt.timedelta(days=village_no % 10), voted_down)
        for s in steps:
            self.add(s)
        return not voted_down

    def exit_steps(self, h: _Household, proposed: dt.date, voted_down: bool = False, *,
                   rng: random.Random | None = None, income: int | None = None) -> list[Step]:
        """提出 → 民主评议 → 农户签字确认 → 公示 → 乡镇核实 → 县级批准, from ``proposed``
        (the exit then has ``h.exit_approved``), or up to the appraisal that votes it down."""
        rng, v, t = rng or self.rng, h.village, h.township
        appraised = proposed + dt.timedelta(days=4)
        confirmed = appraised + dt.timedelta(days=rng.randint(1, 4))
        notice = appraised + dt.timedelta(days=6)
        verified = notice + dt.timedelta(days=7 + rng.randint(0, 3))
        approved = verified + dt.timedelta(days=rng.randint(3, 10))
        income = income or max(h.income, INCOME_LINES_FEN[YEAR]) + self.amount(300, 5000, 10,
                                                                                 rng)
        total = rng.randint(25, 45)
        votes_for = total // 2 - 2 if voted_down else total - rng.randint(0, 3)
        steps: list[Step] = []

        def step(day: dt.date, name: str, content: dict[str, Any],
                 *signers: tuple[str, str]) -> None:
            steps.append(Step(day, name, h.id, {**content, "effective_date": day.isoformat()},
                              signers))

        step(proposed, "Household.ExitProposed", {
            "year": YEAR, "income_per_capita_fen": income,
            "income_line_fen": INCOME_LINES_FEN[YEAR],
            "checks": {c: True for c in EXIT_CHECKS}},
            (f"{v}-work-team", "preparer"), (f"{v}-first-secretary", "approver"))
        step(appraised, "Household.ExitAppraised",
             {"votes_for": votes_for, "votes_against": rng.randint(0, total - votes_for),
              "votes_total": total},
             (f"{v}-accountant", "preparer"), (f"{v}-party-secretary", "approver"))
        if voted_down:
            return steps
        step(confirmed, "Household.ExitConfirmedByHousehold", {
            "confirmed_by": h.head, "method": "fingerprint" if rng.random() < 0.2 else "signature"},
            (f"{v}-first-secretary", "witness"))
        step(notice, "Household.NoticePosted", {"round": "exit", "days": 7},
             (f"{v}-work-team", "preparer"))
        step(verified, "Household.ExitVerifiedByTownship", {"opinion": "经入户核实，达到脱贫退出标准"},
             (f"{t}-poverty-officer", "preparer"), (f"{t}-head", "approver"))
        step(approved, "Household.ExitApprovedByCounty",
             {"announcement_no": f"追县扶贫〔{YEAR}〕{100 + int(t[-3:])}号"},
             (f"{COUNTY}-poverty-staff-{rng.randint(1, 3)}", "preparer"),
             (f"{COUNTY}-poverty-director", "reviewer"), (f"{COUNTY}-magistrate", "approver"))
        h.status, h.until, h.income, h.exit_approved = "exited", proposed, income, approved
        return steps

    def plan_relapse(self, h: _Household) -> None:
        self.add(self.relapse(h, _d(12, 12) + dt.timedelta(days=self.rng.randint(0, 8)),
                              self.rng))

    def relapse(self, h: _Household, day: dt.date, rng: random.Random) -> Step:
        """返贫: the household is on the register again from ``day``."""
        h.status, h.relapsed_on = "registered", day
        return Step(day, "Household.Relapsed", h.id, {
            "effective_date": day.isoformat(), "cause": rng.choice(("illness", "disaster")),
            "income_per_capita_fen": self.amount(3000, 6500, 10, rng)},
            ((f"{h.village}-accountant", "preparer"), (f"{h.township}-poverty-officer", "reviewer"),
             (f"{COUNTY}-deputy-magistrate", "approver")))

    def pay(self, day: dt.date, region: str, source: str, payee_kind: str,
            payee_id: str, amount: int, purpose: str, project_id: str | None = None,
            document_no: str | None = None) -> dict[str, Any]:
        """拨付 from the account of ``region``."""
        content = {"movement_id": self.movement_id(), "payee_kind": payee_kind,
                   "payee_id": payee_id, "amount_fen": amount, "effective_date": day.isoformat(),
                   "purpose": purpose, "project_id": project_id,
                   "document_no": document_no or f"{region}-付{YEAR}-{self.next(region):05d}"}
        self.add(Step(day, "FundAccount.Disbursed", self.account(region, source), content,
                      _money_signers(region, large=amount >= 5_000_000)))
        return content

    def plan_household_payments(self, h: _Household) -> None:
        """到户 aid after registration; aid that stops at exit or removal is paid before it."""
        rng, start = self.rng, _later(h.registered_on, 5)  # type: ignore[arg-type]
        plans = []  # (purpose, source, amount, first day, last day)
        if rng.random() < 0.7:
            plans.append(("hh_industry", "central", self.amount(1000, 3000), _d(4, 10), _d(6, 30)))
        if "education" in h.causes or rng.random() < 0.12:
            plans.append(("hh_education", "central", self.amount(1000, 3000), _d(9, 1), _d(9, 20)))
        if ("illness" in h.causes and rng.random() < 0.6) or rng.random() < 0.05:
            plans.append(("hh_medical", "central", self.amount(500, 8000), _d(5, 1), _d(12, 20)))
        if rng.random() < 0.06:
            plans.append(("hh_housing", "provincial", self.amount(15000, 35000, 1000),
                          _d(6, 1), _d(8, 31)))
        if {"lack_of_skills", "lack_of_labour"} & set(h.causes) and rng.random() < 0.5:
            plans.append(("hh_employment", "central", self.amount(500, 1500), _d(7, 1), _d(10, 31)))
        if rng.random() < 0.1:
            plans.append(("hh_microcredit_interest", "central", self.amount(300, 1500),
                          _d(12, 10), _d(12, 20)))
        continuing = ("hh_education", "hh_medical", "hh_employment", "hh_microcredit_interest")
        for purpose, source, amount, first, last in plans:
            first = max(first, start)
            if h.status == "removed" or purpose not in continuing:
                last = min(last, h.until)
            if first > last:
                continue
            day = first + dt.timedelta(days=rng.randint(0, (last - first).days))
            content = self.pay(day, h.township, source, "household", h.id, amount, purpose)
            self.payments.append({**content, "region": h.township, "source": source,
                                  "household": h})

    def plan_projects(self, registered: list[_Household]) -> None:
        """One county-approved project per village, paid by its township, and one county
        training project; advance to the project, progress and final payments to suppliers."""
        by_village: dict[str, list[_Household]] = defaultdict(list)
        for h in registered:
            by_village[h.village].append(h)
        suppliers = [str(stable_id("supplier", f"{COUNTY}-S{k:02d}")) for k in range(1, 9)]
        sites = [(v, t) for t, vs in villages(self.size).items() for v in vs] + [(COUNTY, None)]
        for n, (region, township) in enumerate(sites, start=1):
            if township is None:
                purpose, source = "prj_training", "central"
                pool = registered
            else:
                purpose = self.rng.choice(("prj_village_infrastructure", "prj_drinking_water",
                                           "prj_industry"))
                source = "provincial" if purpose == "prj_drinking_water" else "central"
                pool = by_village[region]
            code = f"P{region}-{YEAR}-{n:03d}"
            pid = str(Project.create_id(code))
            budget = self.amount(300_000, 1_200_000, 1000)
            approved = _d(4, 10) + dt.timedelta(days=self.rng.randint(0, 40))
            k = min(max(len(pool) - 2, 0), self.rng.randint(10, 40))
            chosen = sorted(self.rng.sample(pool, k), key=lambda h: h.code)
            title = {"prj_village_infrastructure": "村组道路硬化", "prj_drinking_water": "安全饮水巩固提升",
                     "prj_industry": "特色种养产业基地", "prj_training": "贫困劳动力技能培训"}[purpose]
            self.add(Step(approved, "Project.Approved", pid, {
                "project_code": code, "name": f"{self.names[region]}{title}项目",
                "region_code": region,
                "purpose_code": purpose, "budget_fen": budget,
                "effective_date": approved.isoformat(),
                "beneficiary_household_ids": [h.id for h in chosen]},
                ((f"{COUNTY}-poverty-staff-{self.rng.randint(1, 3)}", "preparer"),
                 (f"{COUNTY}-poverty-director", "reviewer"),
                 (f"{COUNTY}-deputy-magistrate", "approver"))))
            self.projects += 1
            chosen_codes = {h.code for h in chosen}
            others = [h for h in pool if h.code not in chosen_codes]
            if township is not None and others and n % 3 == 1:
                day = _later(approved, self.rng.randint(20, 40))
                self.add(Step(day, "Project.BeneficiaryAdded", pid, {
                    "household_id": self.rng.choice(others).id, "effective_date": day.isoformat()},
                    ((f"{COUNTY}-poverty-staff-1", "preparer"),
                     (f"{COUNTY}-magistrate", "approver"))))
            payer = township or COUNTY
            supplier = suppliers[self.rng.randrange(len(suppliers))]
            self.pay(_later(approved, self.rng.randint(15, 30)), payer, source, "project",
                     pid, budget * 30 // 100, purpose)
            self.pay(_d(7, 1) + dt.timedelta(days=self.rng.randint(0, 60)), payer, source,
                     "supplier", supplier, budget * 40 // 100, purpose, project_id=pid)
            if township is not None and self.rng.random() < 0.7:
                accepted = _d(10, 10) + dt.timedelta(days=self.rng.randint(0, 40))
                self.add(Step(accepted, "Project.AcceptedOnCompletion", pid, {
                    "effective_date": accepted.isoformat(),
                    "report": "工程竣工，经乡镇和县直部门联合验收合格"},
                    ((f"{township}-poverty-officer", "preparer"),
                     (f"{COUNTY}-finance-director", "reviewer"),
                     (f"{COUNTY}-deputy-magistrate", "approver"))))
                self.pay(_later(accepted, self.rng.randint(5, 20)), payer, source,
                         "supplier", supplier, budget * 25 // 100, purpose, project_id=pid)

    def plan_corrections(self) -> None:
        """追回: payments to removed households, and a few partial recoveries of false claims;
        冲正: a few payments entered twice, reversed."""
        def correction(step: str, day: dt.date, p: dict[str, Any], amount: int, reason: str,
                       suffix: str) -> None:
            account = self.account(p["region"], p["source"])
            self.add(Step(day, step, account, {
                "movement_id": self.movement_id(), "of_movement_id": p["movement_id"],
                "amount_fen": amount, "effective_date": day.isoformat(), "purpose": p["purpose"],
                "document_no": f"{p['document_no']}-{suffix}", "reason": reason},
                _money_signers(p["region"])))

        plain = [p for p in self.payments if p["household"].status != "removed"]
        for p in self.payments:
            h = p["household"]
            if h.status == "removed":
                day = _later(h.until, self.rng.randint(15, 45))
                correction("FundAccount.Recovered", day, p, p["amount_fen"],
                           "清退户违规享受的帮扶资金，全额追回", "追")
        picked = self.rng.sample(plain, min(len(plain), max(2, round(0.0015 * len(plain)))))
        # a housing grant entered twice would look split below the approval threshold
        picked.sort(key=lambda p: p["purpose"] != "hh_housing")
        half = len(picked) // 2
        for p in picked[:half]:
            day = _later(dt.date.fromisoformat(p["effective_date"]), self.rng.randint(60, 120))
            correction("FundAccount.Recovered", day, p, p["amount_fen"] // 200 * 100,
                       "虚报冒领，部分追回", "追")
        for p in picked[half:]:
            if p["purpose"] == "hh_housing":
                continue
            day = dt.date.fromisoformat(p["effective_date"])
            twice = self.pay(day, p["region"], p["source"], "household",
                             p["payee_id"], p["amount_fen"], p["purpose"],
                             document_no=p["document_no"])
            correction("FundAccount.Reversed", _later(day, self.rng.randint(3, 10)),
                       {**p, **twice}, twice["amount_fen"], "重复录入，冲正", "冲")

    def plan_annual_reviews(self, registered: list[_Household]) -> None:
        """一年一评 in early December for every household on (or just off) the register."""
        for h in registered:
            if h.status == "removed":
                continue
            day = _d(12, 1) + dt.timedelta(days=self.rng.randint(0, 7))
            growth = 100 if h.status == "exited" else self.rng.randint(100, 125)
            self.add(Step(day, "Household.AnnualReviewRecorded", h.id, {
                "year": YEAR, "effective_date": day.isoformat(),
                "income_per_capita_fen": h.income * growth // 100,
                "members_count": len(h.members), "notes": ""},
                ((f"{h.village}-accountant", "preparer"),
                 (f"{h.township}-poverty-officer", "reviewer"))))

    def plan_funding(self) -> None:
        """Money in at the province and down to each paying account in quarterly tranches.

        A tranche brings an account what it pays until the next tranche arrives, less what
        it still holds (money recovered or reversed included): no account goes negative,
        and no money waits a quarter for payments that come later, so none sits idle
        (资金滞留) by the log clock.  Run after every payment is planned."""
        flows: dict[tuple[str, str], list[tuple[dt.date, int]]] = defaultdict(list)
        for e in self.timeline:
            s = e.item
            if isinstance(s, Step) and s.step in MONEY_BACK | {"FundAccount.Disbursed"}:
                sign = -1 if s.step == "FundAccount.Disbursed" else 1
                flows[self.accounts[s.subject]].append((e.at, sign * s.content["amount_fen"]))
        for source, days in TRANCHES.items():
            arrivals = [_later(day, ARRIVES_AFTER) for day in days] + [dt.date.max]
            wanted: dict[tuple[str, int], int] = {}
            for region in [*townships(self.size), COUNTY]:
                balance = 0
                for k in range(len(days)):
                    window = [fen for day, fen in flows[region, source]
                              if (k == 0 or day >= arrivals[k]) and day < arrivals[k + 1]]
                    wanted[region, k] = max(0, -sum(f for f in window if f < 0) - balance)
                    balance += wanted[region, k] + sum(window)
            for k, day in enumerate(days):
                county = sum(wanted[t, k] for t in [*townships(self.size), COUNTY])
                if not county:
                    continue
                self.add(Step(
                    day, "FundAccount.Received", self.account(PROVINCE, source), {
                        "movement_id": self.movement_id(), "amount_fen": county,
                        "effective_date": day.isoformat(), "purpose": "special_fund",
                        "document_no": f"财农〔{YEAR}〕{self.next('doc-province')}号",
                        "source": {"central": "中央财政专项扶贫资金",
                                   "provincial": "省级财政专项扶贫资金"}[source]},
                    _money_signers(PROVINCE)), first=True)
                self.allocate(_later(day, 5), PROVINCE, CITY, source, county, "示财农")
                self.allocate(_later(day, 10), CITY, COUNTY, source, county, "示市财农")
                for i, t in enumerate(townships(self.size)):
                    amount = wanted[t, k]
                    if amount and i == 0 and k == 0 and source == "central":
                        self.misallocate(arrivals[k], t, amount)
                    if amount:
                        self.allocate(arrivals[k], COUNTY, t, source, amount, "追县财农")

    def allocate(self, day: dt.date, frm: str, to: str, source: str, amount: int,
                 prefix: str) -> dict[str, Any]:
        content = {"movement_id": self.movement_id(), "to_account_id": self.account(to, source),
                   "amount_fen": amount, "effective_date": day.isoformat(),
                   "purpose": "special_fund",
                   "document_no": f"{prefix}〔{YEAR}〕{self.next(prefix)}号"}
        self.add(Step(day, "FundAccount.Allocated", self.account(frm, source), content,
                      _money_signers(frm, large=True)), first=True)
        return content

    def misallocate(self, day: dt.date, township: str, amount: int) -> None:
        """A digit dropped when keying an allocation (少录一位), reversed the same day."""
        wrong = self.allocate(day, COUNTY, township, "central", amount // 10, "追县财农")
        self.add(Step(day, "FundAccount.Reversed", self.account(COUNTY, "central"), {
            "movement_id": self.movement_id(), "of_movement_id": wrong["movement_id"],
            "amount_fen": wrong["amount_fen"], "effective_date": day.isoformat(),
            "purpose": "special_fund", "document_no": f"{wrong['document_no']}-冲",
            "reason": "下达金额录入错误（少录一位），冲正后重新下达"}, _money_signers(COUNTY)),
            first=True)


def _money_signers(region: str, large: bool = False) -> tuple[tuple[str, str], ...]:
    """经办 / 审核 / 审批 at the account's own level."""
    if region in (PROVINCE, CITY):
        return ((f"{region}-finance-officer", "preparer"),
                (f"{region}-poverty-director", "reviewer"),
                (f"{region}-finance-director", "approver"))
    if region == COUNTY:
        return ((f"{COUNTY}-finance-officer-{2 if large else 1}", "preparer"),
                (f"{COUNTY}-finance-director", "reviewer"),
                (f"{COUNTY}-deputy-magistrate", "approver"))
    if large:
        return ((f"{region}-finance-accountant", "preparer"), (f"{region}-head", "reviewer"),
                (f"{region}-party-secretary", "approver"))
    return ((f"{region}-poverty-officer", "preparer"), (f"{region}-finance-accountant", "reviewer"),
            (f"{region}-head", "approver"))
