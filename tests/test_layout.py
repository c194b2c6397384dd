"""The layout holds: one folder per concern, imports pointing one way, no circles.

The import graph is read from the code (every ``import`` and ``from … import``, including
those inside functions), module by module, so a new import that crosses a wall or closes a
circle fails here before anyone has to find it by reading.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each package and the packages it may import (see README "Layout" and each __init__).
MAY_IMPORT: dict[str, set[str]] = {
    "domain": set(),
    "store": {"domain"},
    "audit": {"domain", "store"},
    "inspection": {"domain"},
    "projections": {"domain", "store", "audit", "inspection"},
    "runtime": {"domain", "store", "audit", "inspection", "projections"},
    "access": {"domain", "store"},
    "demo": {"domain", "store", "inspection"},
    "exchange": {"domain", "store", "inspection", "projections", "access"},
    "console": {"domain", "store", "audit", "inspection", "projections", "runtime", "access",
                "exchange"},
    "api": {"domain", "store", "audit", "inspection", "projections", "runtime", "access",
            "exchange", "console"},
    "cli": {"domain", "store", "audit", "inspection", "projections", "runtime", "access",
            "exchange", "console", "api", "demo"},
}
# api, cli and demo sit on top: nothing imports them, but for the program's entry point,
# whose `serve` verb starts the HTTP API and whose `demo` verb loads the demo county.
ENTRY_POINT = {"cli.server": {"api.http", "demo.build", "demo.misconduct"}}
TOP = {"api", "cli", "demo"}
LONG_FILE_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import module`` names the module)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        out |= {t for t in targets if t.split(".")[0] in MAY_IMPORT}
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, name, set(found)) for name, path in found.items()}


def test_every_package_imports_only_the_packages_below_it(graph: dict[str, set[str]]) -> None:
    crossings = sorted(
        f"{module} imports {target}" for module, targets in graph.items() for target in targets
        if (outer := module.split(".")[0]) != (inner := target.split(".")[0])
        and inner not in MAY_IMPORT[outer])
    assert crossings == []


def test_domain_imports_none_of_the_other_packages(graph: dict[str, set[str]]) -> None:
    assert {t for m, ts in graph.items() if m.startswith("domain") for t in ts
            if not t.startswith("domain")} == set()


def test_nothing_imports_api_cli_or_demo_but_the_entry_point(graph: dict[str, set[str]]) -> None:
    found = sorted(
        f"{module} imports {target}" for module, targets in graph.items() for target in targets
        if target.split(".")[0] in TOP and target.split(".")[0] != module.split(".")[0]
        and target not in ENTRY_POINT.get(module, set()))
    assert found == []


def test_no_module_imports_itself_round_a_circle(graph: dict[str, set[str]]) -> None:
    # a package's __init__ that gathers its modules is not a circle with them
    edges = {m: {t for t in ts if not m.startswith(t + ".") and t != m}
             for m, ts in graph.items()}
    try:
        tuple(TopologicalSorter(edges).static_order())
    except CycleError as exc:
        pytest.fail(f"import circle: {' → '.join(exc.args[1])}")


def test_the_layout_check_sees_a_crossing_and_a_circle(tmp_path: Path) -> None:
    """The checks above would fail on a wrong import (they are not vacuous)."""
    bad = tmp_path / "x.py"
    bad.write_text("from api.http import create_app\nfrom projections import runner\n")
    assert imports_of(bad, "domain.x", {"projections.runner"}) == {
        "api.http", "projections.runner"}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_each_package_says_what_lives_there_and_what_it_may_import() -> None:
    for package, allowed in MAY_IMPORT.items():
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 5, f"{package}/__init__.py needs a docstring"
        assert "May import" in doc, f"{package}/__init__.py: say what it may import"
        for other in allowed:
            assert f"``{other}``" in doc.split("May import", 1)[1], (package, other)


def test_no_long_file_without_a_reason_at_its_top() -> None:
    long_files = []
    for path in modules().values():
        lines = path.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > LONG_FILE_LINES and "Why one file:" not in doc:
            long_files.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long_files == []


def test_every_package_is_installed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    present = {".".join(p.parent.relative_to(ROOT).parts) for package in MAY_IMPORT
               for p in (ROOT / package).rglob("__init__.py")}
    assert present - listed == set()


def test_the_image_copies_every_package() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert [p for p in MAY_IMPORT if f"COPY {p} ./{p}" not in dockerfile] == []
