"""The declared dependencies match the code, read from the source tree.

Every third-party import of ``src/darkproxy`` (parsed with :mod:`ast`, mapped to
its distribution with :func:`importlib.metadata.packages_distributions`) is
declared in ``[project].dependencies`` or, when the code only imports it where
an ``ImportError`` is caught (an optional feature), in an extra; every declared
package is imported somewhere, except the few listed below with their reason;
every requirement has a lower bound. The same for ``tests/`` against the
dependencies plus the ``test`` extra, and ``bench/`` plus the ``dev`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
NAME = PROJECT["name"]

# declared, never imported by src/darkproxy: distribution -> why
NOT_IMPORTED: dict[str, str] = {}
# the test and dev extras' packages that no test imports: distribution -> why
TOOLS = {
    "pytest-timeout": "pytest plugin (pyproject's [tool.pytest.ini_options] timeout)",
    "build": "tests/test_wheel.py runs `python -m build --wheel --no-isolation`",
    "ruff": "command-line check of .ci/run",
    "mypy": "command-line check of .ci/run",
}
# imports whose distribution is not the one of their top-level module
SUBMODULE_PROVIDERS = {"torch.utils.tensorboard": "tensorboard"}  # torch's wrapper imports the tensorboard package
NON_RUNTIME_EXTRAS = {"test", "dev"}
LOWER_BOUND = re.compile(r"(>=|==|~=|>)\s*\d")
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*?)\s*(?:;\s*(.*))?$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str  # normalized
    extras: tuple[str, ...]
    spec: str
    marker: str

    @classmethod
    def parse(cls, text: str) -> Requirement:
        m = REQUIREMENT.match(text)
        assert m, f"cannot parse requirement {text!r}"
        extras = tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
        return cls(normalize(m.group(1)), extras, m.group(3), m.group(4) or "")


CORE = [Requirement.parse(r) for r in PROJECT["dependencies"]]
EXTRAS = {k: [Requirement.parse(r) for r in v] for k, v in PROJECT.get("optional-dependencies", {}).items()}


def extra_names(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Distributions of an extra, following ``darkproxy[other]`` self-references."""
    out: set[str] = set()
    for r in EXTRAS[extra]:
        if r.name == normalize(NAME):
            for e in r.extras:
                assert e in EXTRAS, f"[{extra}] refers to the missing extra [{e}]"
                if e not in seen:
                    out |= extra_names(e, seen | {extra})
        else:
            out.add(r.name)
    return out


@dataclass(frozen=True)
class Import:
    module: str  # dotted name as written
    where: str  # path:line
    guarded: bool  # inside `try:` whose handlers catch ImportError / ModuleNotFoundError
    version_conditional: bool  # inside `if sys.version_info ...:` (either branch)


def _catches_import_error(node: ast.Try) -> bool:
    for h in node.handlers:
        types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        if any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types):
            return True
    return False


def imports_of(path: Path) -> list[Import]:
    out: list[Import] = []
    rel = path.relative_to(ROOT)

    def visit(node: ast.AST, guarded: bool, versioned: bool) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append(Import(a.name, f"{rel}:{node.lineno}", guarded, versioned))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(Import(node.module, f"{rel}:{node.lineno}", guarded, versioned))
        if isinstance(node, ast.Try):
            catches = _catches_import_error(node)
            for stmt in node.body:
                visit(stmt, guarded or catches, versioned)
            others: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in others:
                visit(other, guarded, versioned)
            return
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            for stmt in [*node.body, *node.orelse]:
                visit(stmt, guarded, True)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded, versioned)

    visit(ast.parse(path.read_text(), str(path)), False, False)
    return out


def third_party(files: list[Path], local: set[str]) -> dict[str, list[Import]]:
    """Distribution (normalized) -> its imports, for the third-party imports of ``files``."""
    dists = packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    out: dict[str, list[Import]] = {}
    for f in files:
        for imp in imports_of(f):
            top = imp.module.split(".")[0]
            if top in stdlib or top in local:
                continue
            provider = next(
                (d for m, d in SUBMODULE_PROVIDERS.items() if imp.module == m or imp.module.startswith(m + ".")), None
            )
            # a module that is not installed here (e.g. tomli on Python >= 3.11) is named like its distribution
            names = [provider] if provider else dists.get(top, [top])
            for name in {normalize(n) for n in names}:
                out.setdefault(name, []).append(imp)
    return out


SRC_IMPORTS = third_party(sorted((ROOT / "src" / NAME).rglob("*.py")), {NAME})
_LOCAL = {NAME, "tests", "bench"} | {p.stem for d in ("tests", "bench") for p in (ROOT / d).rglob("*.py")}
TEST_IMPORTS = {  # extra -> what the files it serves import
    "test": third_party(sorted((ROOT / "tests").rglob("*.py")), _LOCAL),
    "dev": third_party(sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]), _LOCAL),
}


def _where(imps: list[Import]) -> str:
    return ", ".join(i.where for i in imps[:3]) + (" ..." if len(imps) > 3 else "")


def test_every_requirement_has_a_lower_bound() -> None:
    for group, reqs in [("dependencies", CORE), *((f"[{k}]", v) for k, v in EXTRAS.items())]:
        for r in reqs:
            if r.name != normalize(NAME):
                assert LOWER_BOUND.search(r.spec), f"{group}: {r.name} has no lower bound ({r.spec or 'none'})"


def test_every_import_of_the_package_is_declared() -> None:
    core = {r.name for r in CORE}
    runtime_extras = {e: extra_names(e) for e in EXTRAS if e not in NON_RUNTIME_EXTRAS}
    in_extras = set().union(*runtime_extras.values())
    problems = []
    for dist, imps in sorted(SRC_IMPORTS.items()):
        required = [i for i in imps if not i.guarded and not i.version_conditional]
        if required:
            if dist not in core:
                problems.append(f"{dist} is imported ({_where(required)}) but not in [project].dependencies")
        elif all(i.version_conditional for i in imps):
            markers = [r.marker for r in CORE if r.name == dist]
            if not any("python_version" in m for m in markers):
                problems.append(
                    f"{dist} is imported on some Python versions only ({_where(imps)}): "
                    "declare it in [project].dependencies with a python_version marker"
                )
        else:  # optional: only imported where an ImportError is caught
            if dist not in in_extras:
                problems.append(f"{dist} is an optional import ({_where(imps)}) but in no extra")
            if dist in core:
                problems.append(f"{dist} is an optional import ({_where(imps)}): move it to an extra")
    assert not problems, "\n".join(problems)


def test_every_declared_package_is_imported() -> None:
    declared = {r.name for r in CORE}
    for e in EXTRAS:
        if e not in NON_RUNTIME_EXTRAS:
            declared |= extra_names(e)
    unused = sorted(declared - set(SRC_IMPORTS) - set(NOT_IMPORTED))
    assert not unused, f"declared but never imported by src/{NAME}: {unused} (remove them, or list them with a reason)"
    for dist, why in NOT_IMPORTED.items():
        assert dist in declared, f"NOT_IMPORTED lists {dist} ({why}), which is not declared: drop the entry"
        assert dist not in SRC_IMPORTS, f"{dist} is imported ({_where(SRC_IMPORTS[dist])}): drop its NOT_IMPORTED entry"


@pytest.mark.parametrize("extra", sorted(NON_RUNTIME_EXTRAS))
def test_test_and_dev_extras_hold_what_the_tests_use(extra: str) -> None:
    assert extra in EXTRAS, f"pyproject has no [{extra}] extra"
    imports = TEST_IMPORTS[extra]
    missing = sorted(set(imports) - {r.name for r in CORE} - extra_names(extra))
    assert not missing, f"not in [{extra}]: " + "; ".join(f"{d} ({_where(imports[d])})" for d in missing)
    unused = sorted(extra_names(extra) - set(imports) - set(SRC_IMPORTS) - set(TOOLS))
    assert not unused, f"[{extra}] holds {unused}, which nothing imports and TOOLS does not list"
    if extra == "dev":
        assert extra_names("test") <= extra_names("dev"), "[dev] must include [test]"


def test_the_parser_sees_optional_and_version_conditional_imports() -> None:
    """Guards the checks above: they rely on the classification of these known imports."""
    tb = [i for i in SRC_IMPORTS["tensorboard"] if i.module == "torch.utils.tensorboard"]
    assert tb and all(i.guarded for i in tb)
    assert SRC_IMPORTS["tomli"] and all(i.version_conditional for i in SRC_IMPORTS["tomli"])
    assert any(not i.guarded for i in SRC_IMPORTS["torch"])
    assert "pillow" in SRC_IMPORTS and "scikit-image" in SRC_IMPORTS
