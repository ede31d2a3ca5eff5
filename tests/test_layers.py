"""The package's floors (docs/ARCHITECTURE.md): each module imports only from its own floor or
below, and no modules import each other in a circle. Read from the source with ``ast``, so a
lazy import inside a function counts like one at the top."""

import ast
from pathlib import Path

import robusttext

ROOT = Path(robusttext.__file__).parent

# Floor of each unit (a top-level module, or a sub-package); a unit may import its own floor
# and those below.
FLOORS = {
    "robusttext": 0, "errors": 0, "methods": 0, "options": 0, "checkpoint": 0, "shipped": 0,
    "config": 0, "lazy": 0,
    "distributed": 0,
    "bounds": 1, "perturb": 1, "data": 1,
    "text": 2,
    "certify": 3,
    "train": 4, "vision": 4,
    "cli": 5, "__main__": 5,
}
# Modules that sit above their package's floor, with the reason.
EXCEPTIONS = {
    # the one-call API over certify for transformers models, on certify's floor, and the
    # package that re-exports it (its models, robusttext.text.hf.model etc., stay on text's)
    "robusttext.text.hf.api": 3,
    "robusttext.text.hf": 3,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "robusttext"


def floor(module: str) -> int:
    if module in EXCEPTIONS:
        return EXCEPTIONS[module]
    return FLOORS[unit(module)]


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The robusttext modules ``path`` imports (``from robusttext.a import b`` names the module
    ``robusttext.a.b`` when there is one, else ``robusttext.a``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "robusttext":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "robusttext"}
    return found


def test_every_unit_has_a_floor():
    assert {unit(m) for m in MODULES} <= set(FLOORS), {unit(m) for m in MODULES} - set(FLOORS)


def test_no_module_imports_from_a_floor_above_it():
    upward = sorted(f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)})"
                    for m, path in MODULES.items() for t in imports(path, top_level_only=False)
                    if floor(t) > floor(m))
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    """Imports form no cycle, lazy ones inside functions counted (a cycle hidden by a lazy
    import still ties two modules to each other)."""
    graph = {m: {t for t in imports(p, top_level_only=False) if t in MODULES and t != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_test_modules_do_not_import_each_other():
    """What several test modules share lives in tests/builders.py and tests/oracles.py."""
    tests = Path(__file__).parent
    shared = sorted(f"{path.name} imports {node.module}"
                    for path in tests.glob("test_*.py")
                    for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("tests.test_"))
    assert not shared, "\n".join(shared)
