"""The package's import graph keeps one-way floors, and runs start in one place.

Read with ``ast`` from the sources, nothing is imported:

- no import cycle among ``afme_lib`` modules (top-level and function-level imports alike);
- no module imports from a floor above its own (:data:`FLOORS`, ground first);
- no function-level import of the package's own modules unless its line carries a comment
  saying why (keeping ``afme --help`` fast, an optional heavy dependency ...);
- nothing but the run entry point (afme_lib/experiments/run.py) constructs the Trainer.

A new module must be given a floor here: :func:`floor_of` refuses a module no floor claims.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "afme_lib"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Floors, ground first. A module may import from its own floor and the floors below it.
# An entry "x" claims the module x and, when it is a package, everything inside it.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    # settings, errors, metric names and rank math, atomic files, how progress is shown
    ("core", ("afme_lib", "afme_lib.core")),
    ("data", ("afme_lib.data",)),  # benchmark files, registry and download, feature store, synthetic graphs
    ("models", ("afme_lib.models",)),  # score math, representations, the registry; no training policy
    # training and evaluation: losses, sampling, ranking, checkpoints, run folders, device, processes, memory model
    ("engine", ("afme_lib.engine",)),
    # reads models and runs, evaluates, never trains; raw text / images -> feature files
    ("analysis", ("afme_lib.analysis", "afme_lib.extraction")),
    # the run spec and the one run entry point, comparisons, grids, the main job, report pages
    ("experiments", ("afme_lib.experiments",)),
    ("interfaces", ("afme_lib.interfaces",)),  # the afme command line, the notebooks' helpers
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported afme_lib module
    line: int
    in_function: bool
    commented: bool  # a comment on one of the statement's lines


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _comment_lines(source: str) -> set[int]:
    return {
        tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT
    }


def _targets(node: ast.AST, modules: dict[str, Path], this: str) -> list[str]:
    """The package modules an Import / ImportFrom node loads (a name that is itself a module
    counts as that module, ``from afme_lib.engine import memory`` -> afme_lib.engine.memory)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if node.level:  # relative import
        base = this.split(".")
        if modules[this].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if mod.split(".")[0] != PACKAGE:
        return []
    out = []
    for alias in node.names:
        sub = f"{mod}.{alias.name}"
        out.append(sub if sub in modules else mod)
    return out


def package_imports(root: Path = ROOT) -> list[Import]:
    modules = package_modules(root)
    found = []
    for name, path in modules.items():
        source = path.read_text()
        comments = _comment_lines(source)
        tree = ast.parse(source)
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        in_function.add(id(inner))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            for target in dict.fromkeys(_targets(node, modules, name)):  # one edge per statement and target
                if target == name:
                    continue
                found.append(Import(name, target, node.lineno, id(node) in in_function, bool(lines & comments)))
    return found


def floor_of(module: str) -> int:
    best = None  # the longest claiming entry wins
    for level, (_name, entries) in enumerate(FLOORS):
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                if best is None or len(entry) > best[1]:
                    best = (level, len(entry))
    if best is None:
        raise AssertionError(f"{module} has no floor: add it to FLOORS in tests/test_architecture.py")
    return best[0]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if floor_of(imp.target) > floor_of(imp.source)]


def unexplained_function_imports(imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if imp.in_function and not imp.commented]


def _where(imp: Import) -> str:
    return f"{imp.source}:{imp.line} -> {imp.target}"


# --- the checks -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return package_imports()


def test_the_analysis_sees_the_package(imports):
    modules = package_modules()
    assert {"afme_lib.engine.training", "afme_lib.models.registry", "afme_lib.experiments.grid"} <= set(modules)
    assert any(i.source == "afme_lib.engine.training" and i.target == "afme_lib.engine.evaluation" for i in imports)
    # `from afme_lib.engine import distributed` names a module: the edge goes to it, not to the package
    assert any(i.source == "afme_lib.engine.training" and i.target == "afme_lib.engine.distributed" for i in imports)


def test_every_module_has_a_floor():
    for module in package_modules():
        floor_of(module)


def test_no_import_cycle(imports):
    assert cycles(imports) == []


def test_no_import_from_a_higher_floor(imports):
    bad = [
        f"{_where(i)} ({FLOORS[floor_of(i.source)][0]} imports {FLOORS[floor_of(i.target)][0]})"
        for i in upward(imports)
    ]
    assert bad == []


def test_function_level_imports_of_the_package_say_why(imports):
    assert [_where(i) for i in unexplained_function_imports(imports)] == []


def trainer_builders(root: Path = ROOT) -> list[str]:
    """``file:line`` of every call that constructs the Trainer, in the package and the benchmark scripts."""
    found = []
    for path in [*sorted(root.rglob("*.py")), *sorted((root.parent / "benchmarks").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "Trainer":
                    found.append(f"{path.relative_to(root.parent).as_posix()}:{node.lineno}")
    return found


def test_only_the_run_entry_point_builds_a_trainer():
    """Every run starts at afme_lib.experiments.run (the CLI, grid cells, notebooks, the main job
    and the benchmarks call it); nothing else constructs the engine's Trainer."""
    builders = trainer_builders()
    assert builders, "the scan finds the entry point's own construction"
    assert [b for b in builders if not b.startswith("afme_lib/experiments/run.py:")] == []


# --- the analysis itself, on a made-up package ----------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_analysis_finds_a_cycle_an_upward_import_and_a_silent_function_import(tmp_path):
    root = _write(
        tmp_path / PACKAGE,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "engine/__init__.py": "",
            "core/config.py": "from afme_lib.engine import training\n",  # core -> engine: upward, and a cycle
            "engine/training.py": (
                "import afme_lib.core.config\n"
                "def f():\n"
                "    from afme_lib.engine.evaluation import x\n"
                "    from afme_lib.engine.run_folder import y  # lazy: only resume needs it\n"
            ),
            "engine/evaluation.py": "",
            "engine/run_folder.py": "",
        },
    )
    found = package_imports(root)
    assert cycles(found) == [["afme_lib.core.config", "afme_lib.engine.training"]]
    assert [_where(i) for i in upward(found)] == ["afme_lib.core.config:1 -> afme_lib.engine.training"]
    assert [_where(i) for i in unexplained_function_imports(found)] == [
        "afme_lib.engine.training:3 -> afme_lib.engine.evaluation"
    ]


# --- the house -------------------------------------------------------------------------------------
def test_code_tests_notebooks_and_readme_hold_no_issue_numbers_and_the_readme_stays_short():
    """History lives in git and reports/, not in the code; the README is a newcomer's page."""
    import re

    project = ROOT.parent
    pattern = re.compile(r"issue [0-9]+", re.IGNORECASE)
    files = [
        *ROOT.rglob("*.py"),
        *(project / "tests").rglob("*.py"),
        *(project / "notebooks").glob("*.ipynb"),
        project / "notebooks" / "_build.py",
        project / "README.md",
    ]
    found = [
        f"{path.relative_to(project)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
    assert (project / "README.md").stat().st_size <= 10_000
    assert not list(ROOT.rglob("*_v1.py"))  # one AFME
