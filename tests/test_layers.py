"""The layering of the package, checked on its source (ast): the memory layer imports
nothing of the BPF layer, no subpackage import cycle, the BPF layer uses only the memory
services it declares (bpf/services.py) and no C-core function of the memory layer."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pybpfmem"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


MODULES = _modules()


@dataclasses.dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    type_only: bool       # under `if TYPE_CHECKING:`


def _imports(name: str, path: Path) -> list[Edge]:
    """Every pybpfmem module `name` imports, at module level or inside functions,
    absolute or relative."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    type_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                type_lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                targets.append(sub if sub in MODULES else mod)
        for t in targets:
            # `import a.b.c` depends on the deepest pybpfmem module it names
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.append(Edge(name, t, node.lineno, node.lineno in type_lines))
    return out


EDGES = [e for name, path in MODULES.items() for e in _imports(name, path)]


def layer(module: str) -> str:
    """The subpackage a module belongs to (mm, bpf, profiles, commands, live, reference),
    or the top-level module itself."""
    parts = module.split(".")
    if len(parts) > 1 and (PKG / parts[1]).is_dir():
        return parts[1]
    return module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_memory_layer_imports_nothing_of_the_bpf_layer() -> None:
    bad = [f"{e.src}:{e.line} imports {e.dst}" for e in EDGES
           if layer(e.src) == "mm" and layer(e.dst) == "bpf"]
    assert bad == []


def test_profiles_import_neither_layer() -> None:
    bad = [f"{e.src}:{e.line} imports {e.dst}" for e in EDGES
           if layer(e.src) == "profiles" and layer(e.dst) in ("mm", "bpf", "commands", "live")]
    assert bad == []


def test_no_import_cycle_between_subpackages() -> None:
    graph: dict[str, set[str]] = {}
    for e in EDGES:
        a, b = layer(e.src), layer(e.dst)
        # the package __init__ re-exports the public API from below; nothing imports it back
        if a != b and a != "pybpfmem":
            graph.setdefault(a, set()).add(b)
    assert _cycles(graph) == []


def test_no_import_cycle_inside_the_bpf_layer() -> None:
    graph: dict[str, set[str]] = {}
    for e in EDGES:
        if layer(e.src) == layer(e.dst) == "bpf" and e.src != "pybpfmem.bpf":
            graph.setdefault(e.src, set()).add(e.dst)
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_import_parser_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from ..bpf import uapi\ndef g():\n    from pybpfmem.bpf.map import BpfMap\n")
    edges = _imports("pybpfmem.mm.x", f)
    assert [(e.dst, e.line) for e in edges] == [("pybpfmem.bpf.uapi", 1), ("pybpfmem.bpf.map", 3)]


# --- the BPF layer reaches the memory System only through services.MemSystem ------------

def _members(cls: type) -> set[str]:
    return {n for k in cls.__mro__ if k is not object for n in vars(k)} | set(
        getattr(cls, "__annotations__", {}))


def _system_attrs(source: str) -> dict[str, list[int]]:
    """Attributes read on an expression naming a System (system.x, self.system.x, sysm.x)."""
    used: dict[str, list[int]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and \
                ast.unparse(node.value).split(".")[-1] in ("system", "sysm", "sys_"):
            used.setdefault(node.attr, []).append(node.lineno)
    return used


def _allowed_system_attrs() -> set[str]:
    from pybpfmem.bpf.services import MemSystem
    from pybpfmem.bpf.system_api import BpfSystemMixin
    mixin = {n for n in _members(BpfSystemMixin) if not n.startswith("__")}
    return {n for n in _members(MemSystem) if not n.startswith("_")} | mixin


def test_bpf_layer_uses_only_the_declared_memory_services() -> None:
    allowed = _allowed_system_attrs()
    outside = {f"{path.name}:{line} .{attr}"
               for name, path in MODULES.items() if layer(name) == "bpf"
               for attr, lines in _system_attrs(path.read_text()).items() if attr not in allowed
               for line in lines}
    assert outside == set()


def test_service_check_sees_private_reaches() -> None:
    src = "x = system._sys\ny = self.system._cpu_task\nz = sysm.__dict__\nw = sysm.kmalloc\n"
    used = _system_attrs(src)
    assert sorted(a for a in used if a not in _allowed_system_attrs()) == \
        ["__dict__", "_cpu_task", "_sys"]


def test_bpf_layer_calls_no_memory_function_of_the_core() -> None:
    """The C core's BPF element store (csrc/htab_store.c, bm_htab_*) is the BPF layer's own;
    every other bm_* function is the memory layer's, reached through its services."""
    bad = []
    for name, path in MODULES.items():
        if layer(name) != "bpf":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "lib" and \
                    not node.attr.lower().startswith("bm_htab_"):
                bad.append(f"{path.name}:{node.lineno} lib.{node.attr}")
    assert bad == []
