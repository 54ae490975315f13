"""Every third-party module the packages import is brought in by pyproject.toml's dependencies.

A package that merely happens to be installed on the machine (as bip_utils once was) must not
hide a missing declaration: `pip install -e .` on a fresh machine installs only what is
declared, and what those declarations require.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "api", "chain", "chainpay", "bot")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _norm(re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0])


def _declared_closure() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    seen: set[str] = set()
    todo = [_requirement_name(r) for r in project["dependencies"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(_requirement_name(r) for r in requirements if "extra ==" not in r)
    return seen


def _imported_modules() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_third_party_module_is_declared() -> None:
    declared = _declared_closure()
    distributions = md.packages_distributions()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
            continue
        providers = {_norm(d) for d in distributions.get(module, [])}
        if not providers:
            missing.append(f"{module} (imported in {where}) is not installed at all")
        elif not providers & declared:
            missing.append(
                f"{module} (imported in {where}) comes from {sorted(providers)}, "
                "which pyproject.toml's dependencies do not bring in"
            )
    assert missing == []


def test_the_check_sees_a_module_no_declaration_brings_in() -> None:
    # The check above is only worth something if an undeclared distribution is told apart:
    # pytest is installed (a dev extra) but no runtime dependency requires it.
    assert "pytest" not in _declared_closure()
    assert "bip-utils" in _declared_closure()


# DESIGN.md's arrows: front doors -> core; chainpay -> all; api and bot never import each other
# or chain; core imports no front door and no web or bot framework.
FORBIDDEN = {
    "core": {"api", "bot", "chain", "chainpay", "fastapi", "starlette", "aiogram", "uvicorn"},
    "api": {"bot", "chain", "chainpay", "aiogram"},
    "bot": {"api", "chain", "chainpay", "fastapi", "starlette"},
    "chain": {"api", "bot", "chainpay", "fastapi", "aiogram"},
}


def test_imports_point_one_way() -> None:
    broken = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                broken.extend(
                    f"{path.relative_to(ROOT)} imports {name}"
                    for name in names
                    if name.split(".")[0] in forbidden
                )
    assert broken == []
