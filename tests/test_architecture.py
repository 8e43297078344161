"""The package's structure, read from the source tree (docs/architecture.md).

Every module of ``src/darkproxy`` is parsed with :mod:`ast`; its imports are
collected wherever they are (module level, inside functions, under ``if
TYPE_CHECKING:``; relative ones resolved; ``importlib.import_module`` and
``importlib.resources.files`` with a constant ``"darkproxy..."`` argument count
too, since they import that package). Each module gets the layer of the longest
entry of :data:`LAYERS` that names it or a package above it. Then:

* no import from a lower layer to a higher one (same-layer imports are fine);
* no import cycle among modules, the model registry's self-registration aside
  (:data:`REGISTRATION_EDGES`);
* no file over :data:`MAX_FILE_LINES` lines but the ports of darktable modules
  (:data:`LONG_FILES`);
* no function over :data:`MAX_FUNCTION_LINES` lines but darktable maths kernels
  (:data:`LONG_FUNCTIONS`).

The tables here are the one place the layers are written down; the picture and
the reasons are in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "darkproxy"

# lowest first; a module may import its own layer and the ones below it
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # no darkproxy imports but each other: errors, atomic files and the one JSON writer, console output,
    # configuration, resumable job steps
    (
        "core",
        (
            "darkproxy",
            "darkproxy.errors",
            "darkproxy.fsutil",
            "darkproxy.progress",
            "darkproxy.config",
            "darkproxy.machine",
            "darkproxy.jobsteps",
        ),
    ),
    # encodings, matrices and image metrics: one of each
    ("colour", ("darkproxy.colour",)),
    # files and programs: raw files, darktable (its CLI, introspection, XMP, styles, renders, tap-outs)
    ("io", ("darkproxy.raw", "darkproxy.darktable")),
    # presentation: display images, plots, videos, HTML reports, the headless browser
    ("viz", ("darkproxy.viz",)),
    # datasets (param spaces, ranges, sampling, generation, render scale) and the architectures
    ("data", ("darkproxy.data", "darkproxy.models")),
    # a trained proxy: load (run folder or zoo:MODULE), run, scale, tile, LUT fast path
    ("proxy", ("darkproxy.proxy",)),
    # what runs proxies: training, evaluation against darktable, regression (+ recovery, benchmark)
    ("engines", ("darkproxy.engines",)),
    # the differentiable replica of darktable: stage registry, shared colour science, ports, chain, fit
    ("replica", ("darkproxy.replica",)),
    # applications built on the above
    ("applications", ("darkproxy.pipeline", "darkproxy.match", "darkproxy.zoo", "darkproxy.cluster")),
    # entry points
    ("top", ("darkproxy.cli", "darkproxy.demo", "darkproxy.doctor", "darkproxy.__main__")),
)

# the architectures register themselves: registry.list_archs() imports the built-in files, which import
# the registry for its decorator
REGISTRATION_EDGES: frozenset[tuple[str, str]] = frozenset(
    ("darkproxy.models.registry", f"darkproxy.models.{arch}")
    for arch in ("pointwise", "multiscale", "spatial", "demosaic", "demosaic_rcd", "positional")
)

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 100
# ports of darktable modules: darktable's own file is longer still, and one port reads best beside it
LONG_FILES: frozenset[str] = frozenset({"darkproxy.replica.ports.filmicrgb"})
# darktable maths kernels, kept in one piece to read line by line against darktable's C
LONG_FUNCTIONS: frozenset[str] = frozenset({"darkproxy.replica.ports.filmicrgb.compute_spline"})


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int


def _modules() -> dict[str, Module]:
    out = {}
    for p in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if pkg else parts)
        text = p.read_text()
        out[name] = Module(name, p, pkg, ast.parse(text, str(p)), len(text.splitlines()))
    return out


MODULES = _modules()


def _existing(name: str) -> str:
    """``name`` or the nearest package above it that is a module of the tree."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _from_target(mod: Module, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


_DYNAMIC = {"import_module", "files", "__import__"}


def _imports(mod: Module) -> Iterator[Import]:
    for node in ast.walk(mod.tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_target(mod, node)
            if base is None:
                continue
            # ``from darkproxy.x import y`` imports the module darkproxy.x.y when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            arg = node.args[0]
            if name in _DYNAMIC and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                targets = [arg.value]
        for t in targets:
            if t == PACKAGE or t.startswith(PACKAGE + "."):
                t = _existing(t)
                if t != mod.name:
                    yield Import(mod.name, t, node.lineno)


IMPORTS = [imp for m in MODULES.values() for imp in _imports(m)]


def layer_of(name: str) -> int | None:
    """Index in :data:`LAYERS` of the longest entry naming ``name`` or a package above it
    (the root package only by its own name)."""
    best: tuple[int, int] | None = None
    for i, (_, entries) in enumerate(LAYERS):
        for e in entries:
            hit = name == e if e == PACKAGE else name == e or name.startswith(e + ".")
            if hit and (best is None or len(e) > best[1]):
                best = (i, len(e))
    return None if best is None else best[0]


def _where(mod: str, line: int) -> str:
    return f"{MODULES[mod].path.relative_to(ROOT)}:{line}"


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, "modules in no layer (add their package to LAYERS):\n  " + "\n  ".join(missing)


def test_imports_only_go_down() -> None:
    bad = []
    for imp in IMPORTS:
        a, b = layer_of(imp.source), layer_of(imp.target)
        if a is not None and b is not None and b > a:
            bad.append(
                f"{_where(imp.source, imp.line)}: {imp.source} ({LAYERS[a][0]}) imports {imp.target} ({LAYERS[b][0]})"
            )
    assert not bad, f"{len(bad)} imports from a lower layer to a higher one:\n  " + "\n  ".join(sorted(bad))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycles() -> None:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    first: dict[tuple[str, str], int] = {}
    for imp in IMPORTS:
        if (imp.source, imp.target) in REGISTRATION_EDGES:
            continue
        edges[imp.source].add(imp.target)
        first.setdefault((imp.source, imp.target), imp.line)
    msgs = []
    for comp in _cycles(edges):
        inside = set(comp)
        links = [f"    {_where(a, first[(a, b)])}: {a} -> {b}" for a in comp for b in sorted(edges[a]) if b in inside]
        msgs.append(f"  a loop of {len(comp)} modules: {', '.join(comp)}\n" + "\n".join(links))
    assert not msgs, f"{len(msgs)} import loops:\n" + "\n".join(msgs)


def test_registration_edges_exist() -> None:
    """The excepted edges are real (a stale exception would hide nothing but mislead)."""
    have = {(i.source, i.target) for i in IMPORTS}
    assert not REGISTRATION_EDGES - have, sorted(REGISTRATION_EDGES - have)


def test_no_file_over_the_limit() -> None:
    bad = [
        f"{m.path.relative_to(ROOT)}: {m.lines} lines"
        for m in MODULES.values()
        if m.lines > MAX_FILE_LINES and m.name not in LONG_FILES
    ]
    assert not bad, f"{len(bad)} files over {MAX_FILE_LINES} lines:\n  " + "\n  ".join(sorted(bad))
    stale = sorted(n for n in LONG_FILES if n not in MODULES or MODULES[n].lines <= MAX_FILE_LINES)
    assert not stale, f"LONG_FILES entries that are missing or short now (remove them): {stale}"


def _functions(mod: Module) -> Iterator[tuple[str, int, int]]:
    """``(qualified name, first line, lines)`` of every function, nested ones included."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = f"{prefix}.{child.name}"
                yield q, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, q)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}.{child.name}")
            else:
                yield from walk(child, prefix)

    yield from walk(mod.tree, mod.name)


def test_no_function_over_the_limit() -> None:
    found = {q: (m, line, n) for m in MODULES.values() for q, line, n in _functions(m)}
    bad = [
        f"{_where(m.name, line)}: {q} ({n} lines)"
        for q, (m, line, n) in found.items()
        if n > MAX_FUNCTION_LINES and q not in LONG_FUNCTIONS
    ]
    assert not bad, f"{len(bad)} functions over {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(sorted(bad))
    stale = sorted(q for q in LONG_FUNCTIONS if q not in found or found[q][2] <= MAX_FUNCTION_LINES)
    assert not stale, f"LONG_FUNCTIONS entries that are missing or short now (remove them): {stale}"


@pytest.mark.parametrize(
    "name, layer",
    [
        ("darkproxy", "core"),
        ("darkproxy.errors", "core"),
        ("darkproxy.colour.metrics", "colour"),
        ("darkproxy.darktable.render", "io"),
        ("darkproxy.data.generate", "data"),
        ("darkproxy.proxy.locate", "proxy"),
        ("darkproxy.cli.cmd_zoo", "top"),
        ("darkproxy.unknown", None),
    ],
)
def test_layer_lookup(name: str, layer: str | None) -> None:
    """The lookup itself: longest entry wins, the root package only by its own name."""
    got = layer_of(name)
    assert (None if got is None else LAYERS[got][0]) == layer
