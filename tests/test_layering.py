"""The layering rule of docs/design.md, checked on the imports."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["mlscam.grid", "mlscam.layout", "mlscam.normalization", "mlscam.config", "mlscam.model", "mlscam.losses"]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_files_or_mpi(module):
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('mpi4py', 'xarray', 'netCDF4') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_only_parallel_touches_mpi():
    offenders = []
    for path in (ROOT / "mlscam").rglob("*.py"):
        rel = path.relative_to(ROOT / "mlscam").as_posix()
        if rel.startswith("parallel/"):
            continue
        if re.search(r"^\s*(from|import)\s+mpi4py", path.read_text(), re.M):
            offenders.append(rel)
    assert offenders == [], f"only mlscam/parallel may import mpi4py, found it in {offenders}"


@pytest.mark.parametrize("module", ["mlscam.config", "mlscam._groups", "mlscam.losses", "mlscam.losses.registry"])
def test_config_and_loss_registry_import_without_torch(module):
    """``python -m mlscam.config validate`` stays light: checking &loss against the registry needs no torch."""
    code = f"import sys, {module}\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"{module} imports torch"


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """The mlscam modules and packages ``path`` imports (``from X import a`` counts as ``X`` and ``X.a``).

    ``module_level_only``: skip imports inside functions and ``if TYPE_CHECKING:`` blocks (not run on import).
    """
    import ast

    parts = path.relative_to(ROOT).with_suffix("").parts
    package = list(parts[:-1])  # the package a relative import starts from (for __init__ too)
    names: set[str] = set()

    def visit(node) -> None:
        if module_level_only and (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))):
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            names.update([base, *(f"{base}.{a.name}" for a in node.names)])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in names if m == "mlscam" or m.startswith("mlscam.")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "mlscam").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@pytest.mark.parametrize("package", ["model", "losses"])
def test_model_and_losses_never_import_config(package):
    """config is the layer above model and losses (its groups build() them), so they must not import it."""
    offenders = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "mlscam" / package).rglob("*.py")
        if _imports(p, module_level_only=False) & {"mlscam.config", "mlscam._groups"}
    )
    assert offenders == [], f"{offenders} import mlscam.config; take the values (duck typing) instead"


def test_no_import_cycles_between_modules():
    """The module-level import graph of mlscam is acyclic (imports inside functions are deliberate and lazy)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for m in _imports(path, module_level_only=True):
            parts = m.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        # a submodule needs its parent packages initialised first: that is not a cycle
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
