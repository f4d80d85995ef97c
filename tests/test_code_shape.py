"""The house's size rules (shared/STYLE.md): no function over 60 lines and no module over 500 in product code.

An `ast` walk over the product packages: a function's length is its `def` line to its last line
(decorators excluded), a module's is its line count. Each test names every offender, so one run shows
all that is left to split; the planted files show that the checker does see an offender.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("broker", "ui", "kiosk", "counter", "display", "ops", "analytics", "web", "city", "vuoro")
FUNCTION_MAX = 60
MODULE_MAX = 500


@dataclass(frozen=True)
class Offender:
    where: str  # path:line (name)
    lines: int

    def __str__(self) -> str:
        return f"{self.where}: {self.lines} lines"


def product_files(root: Path = ROOT) -> list[Path]:
    return sorted(path for package in PRODUCT for path in (root / package).rglob("*.py"))


def long_functions(path: Path, root: Path = ROOT, limit: int = FUNCTION_MAX) -> list[Offender]:
    """Every function and method in the file longer than `limit` lines, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1  # node.lineno is the `def` line, past any decorator
            if length > limit:
                found.append(Offender(f"{path.relative_to(root)}:{node.lineno} ({node.name})", length))
    return found


def long_module(path: Path, root: Path = ROOT, limit: int = MODULE_MAX) -> Offender | None:
    length = len(path.read_text(encoding="utf-8").splitlines())
    return Offender(str(path.relative_to(root)), length) if length > limit else None


def _report(kind: str, offenders: list[Offender]) -> str:
    return f"{len(offenders)} {kind}:\n" + "\n".join(f"  {o}" for o in offenders)


def test_no_function_is_over_60_lines() -> None:
    offenders = [o for path in product_files() for o in long_functions(path)]
    print(_report(f"functions over {FUNCTION_MAX} lines", offenders))  # with -s: the whole list, for the lead
    assert not offenders, _report(f"functions over {FUNCTION_MAX} lines", offenders)


def test_no_module_is_over_500_lines() -> None:
    offenders = [o for path in product_files() if (o := long_module(path)) is not None]
    print(_report(f"modules over {MODULE_MAX} lines", offenders))
    assert not offenders, _report(f"modules over {MODULE_MAX} lines", offenders)


def test_the_walk_sees_every_product_package() -> None:
    files = product_files()
    assert {path.relative_to(ROOT).parts[0] for path in files} == set(PRODUCT)
    assert ROOT / "broker" / "engine.py" in files


# ---------------------------------------------------------------- the checker can fail

def _body(lines: int) -> str:
    """The body of a function `lines` long, its `def` line included."""
    return "".join(f"    x{n} = {n}\n" for n in range(lines - 2)) + "    return None\n"


@pytest.mark.parametrize("kind", ["function", "method", "nested", "async"])
def test_a_planted_long_function_is_named(tmp_path: Path, kind: str) -> None:
    fine = "def fine():\n" + _body(FUNCTION_MAX)  # exactly 60 lines: allowed
    long = {"function": "@decorated\ndef planted():\n" + _body(FUNCTION_MAX + 1),
            "method": "class Holder:\n" + "".join("    " + line + "\n" for line in
                                                  ("def planted(self):\n" + _body(FUNCTION_MAX + 1)).splitlines()),
            "nested": "def outer():\n    def planted():\n" + "".join("    " + line + "\n" for line in
                                                                      _body(FUNCTION_MAX + 1).splitlines()),
            "async": "async def planted():\n" + _body(FUNCTION_MAX + 1)}[kind]
    path = tmp_path / "pkg" / "planted.py"
    path.parent.mkdir()
    path.write_text(fine + "\n\n" + long, encoding="utf-8")
    names = [o.where.split(" ")[-1] for o in long_functions(path, tmp_path)]
    assert "(planted)" in names and "(fine)" not in names
    offender = next(o for o in long_functions(path, tmp_path) if o.where.endswith("(planted)"))
    assert offender.lines == FUNCTION_MAX + 1 and offender.where.startswith("pkg/planted.py:")


def test_a_decorator_does_not_count_towards_the_length(tmp_path: Path) -> None:
    path = tmp_path / "decorated.py"
    path.write_text("@a\n@b(\n    1,\n)\ndef fine():\n" + _body(FUNCTION_MAX), encoding="utf-8")
    assert long_functions(path, tmp_path) == []


def test_a_planted_long_module_is_named(tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    path.write_text("x = 1\n" * MODULE_MAX, encoding="utf-8")
    assert long_module(path, tmp_path) is None
    path.write_text("x = 1\n" * (MODULE_MAX + 1), encoding="utf-8")
    assert long_module(path, tmp_path) == Offender("big.py", MODULE_MAX + 1)
