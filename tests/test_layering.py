"""The layering rules of docs/design.md, checked on the import graph of the source (lazy imports included).

The rules are read from docs/design.md itself (the ``layers`` block), so the
document and the check cannot drift apart:

1. a unit (``mlscam.X`` for a module or a package) imports only from its own
   unit and from units of LOWER layers: nothing imports upward or sideways;
2. there are no import cycles between units;
3. the core (the layers up to ``config``) imports no MPI, no torch.distributed
   and no file libraries (xarray, netCDF4, cftime, h5py);
4. only ``mlscam.parallel`` imports mpi4py or torch.distributed.

Every ``import`` statement counts, wherever it is (module level or inside a
function), so a lazy import cannot hide a violation; only imports under
``if TYPE_CHECKING:`` (never executed) are left out.
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPI_LIBS = ("mpi4py", "torch.distributed")
FILE_LIBS = ("xarray", "netCDF4", "cftime", "h5py")
CORE_TOP = "config"  # the core: every layer up to and including the one holding this unit


def layers(design: Path = ROOT / "docs" / "design.md") -> list[list[str]]:
    """The ``layers`` block of docs/design.md: one layer per line, bottom first, units separated by spaces."""
    block = re.search(r"```layers\n(.*?)```", design.read_text(), re.S)
    if block is None:
        raise AssertionError(f"{design} has no ```layers block")
    out = []
    for line in block.group(1).splitlines():
        names = line.split("#")[0].split()
        if names:
            out.append(names)
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _executed_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (type hints only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph(package: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(edges, external)``: unit -> mlscam units it imports; unit -> third-party modules it imports."""
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        pkg = module if is_init else module.rpartition(".")[0]
        unit = _unit(module)
        for node in _executed_nodes(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from mlscam import x` / `from . import x`: x may be a submodule
                targets = [f"{mod}.{a.name}" for a in node.names] if mod in ("mlscam", pkg) else [mod]
            for t in targets:
                if t == "mlscam" or t.startswith("mlscam."):
                    target_unit = _unit(t)
                    if target_unit != unit and target_unit != "mlscam.__version__":
                        edges.setdefault(unit, set()).add(target_unit)
                else:
                    external.setdefault(unit, set()).add(t)
    return edges, external


def violations(edges: dict[str, set[str]], external: dict[str, set[str]], table: list[list[str]]) -> list[str]:
    """Every broken rule, one line each (empty: the layering holds)."""
    level = {f"mlscam.{name}": k for k, names in enumerate(table) for name in names}
    core = max(k for k, names in enumerate(table) if CORE_TOP in names)
    found = []
    for unit in sorted(set(edges) | set(external)):
        if unit not in level and unit != "mlscam":
            found.append(f"{unit} is in no layer of docs/design.md: add it to the layers block")
    for unit, targets in sorted(edges.items()):
        if unit == "mlscam":
            continue  # the package root may expose anything
        for t in sorted(targets):
            if t not in level:
                continue
            if level[t] > level.get(unit, -1):
                found.append(f"{unit} imports {t} from a higher layer")
            elif level[t] == level.get(unit, -1):
                found.append(f"{unit} imports {t} from its own layer (units of one layer are independent)")
    # cycles between units (a layering violation already implies one edge upward; report cycles anyway)
    state: dict[str, int] = {}

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                found.append("import cycle: " + " -> ".join(stack[stack.index(v):] + [v]))
            elif v not in state:
                visit(v, stack + [v])
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u, [u])
    for unit, libs in sorted(external.items()):
        for lib in sorted(libs):
            top = lib if lib.startswith("torch.distributed") else lib.split(".")[0]
            if any(top == m or top.startswith(m + ".") for m in MPI_LIBS) and unit != "mlscam.parallel":
                found.append(f"{unit} imports {lib}: only mlscam.parallel may touch MPI or torch.distributed")
            if level.get(unit, core + 1) <= core and top in FILE_LIBS:
                found.append(f"{unit} imports {lib}: the core (layers up to {CORE_TOP}) knows no files")
    return found


def test_the_package_keeps_every_layering_rule():
    edges, external = import_graph(ROOT / "mlscam")
    assert violations(edges, external, layers()) == []


def test_every_unit_of_the_package_has_a_layer():
    table = {name for names in layers() for name in names}
    units = {p.stem if p.is_file() else p.name for p in (ROOT / "mlscam").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert units - table == set(), f"add {sorted(units - table)} to the layers block of docs/design.md"
    assert table - units == set(), f"the layers block names {sorted(table - units)}, which do not exist"


@pytest.mark.parametrize("module,line,expected", [
    # a lazy import inside a function of the model, upward into the file layer
    ("model/engine.py", "    from mlscam.checkpoint import load_checkpoint  # noqa\n", "mlscam.model imports mlscam.checkpoint"),
    # MPI outside parallel
    ("runtime/collective.py", "import mpi4py  # noqa\n", "only mlscam.parallel may touch MPI"),
    # files in the core
    ("grid.py", "    import netCDF4  # noqa\n", "the core (layers up to config) knows no files"),
    # a cycle between two units of different layers
    ("parallel/halo.py", "    from mlscam.runtime import Component  # noqa\n", "import cycle"),
])
def test_a_deliberate_violation_fails_the_check(tmp_path, module, line, expected):
    pkg = tmp_path / "mlscam"
    shutil.copytree(ROOT / "mlscam", pkg, ignore=shutil.ignore_patterns("_native", "assets", "__pycache__"))
    target = pkg / module
    text = target.read_text()
    if line.startswith("    "):  # inside the first function of the module: a lazy import
        m = re.search(r"^def \w+\(.*?\).*?:\n", text, re.S | re.M) or re.search(r"^    def \w+\(.*?\).*?:\n", text, re.S | re.M)
        indent = "    " if m.group(0).startswith("def") else "        "
        text = text[:m.end()] + indent + line.lstrip() + text[m.end():]
    else:
        text = line + text
    target.write_text(text)
    edges, external = import_graph(pkg)
    found = violations(edges, external, layers())
    assert any(expected in v for v in found), found


@pytest.mark.parametrize("module", ["mlscam.config", "mlscam._groups", "mlscam.losses", "mlscam.losses.registry"])
def test_config_and_loss_registry_import_without_torch(module):
    """``python -m mlscam.config validate`` stays light: checking &loss against the registry needs no torch."""
    code = f"import sys, {module}\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"{module} imports torch"
