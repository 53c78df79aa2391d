"""The package's layout holds (README, "How the code is laid out"): imports run one way, core <- io <- live,
tuning, batch <- gui <- the entry points (plugin, cli, api, demo, install), with no circle, not even through a
function-level import; sub-package ``__init__`` files stay empty (pyarrow is hidden before anything imports
pandas, in the package's own ``__init__``); a module over 450 lines says in its docstring that it is one job."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "phy_bcreason"
LAYERS = {"core": 0, "io": 1, "live": 2, "tuning": 2, "batch": 2, "unitrefine": 2, "gui": 3}
BASE = {"_version", "quiet"}  # import nothing of ours: any layer may use them
ENTRY = 4  # plugin, cli, api, demo, install, __init__, __main__
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> int:
    if module in BASE:
        return -1
    top = module.split(".")[0]
    return LAYERS.get(top, ENTRY) if "." in module or top in LAYERS else ENTRY


def _under_type_checking(node, parents) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return True
    return False


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that this file imports, at the top or inside a function, except for annotations
    only (``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "phy_bcreason":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                found.add(candidate if candidate in modules else ".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "phy_bcreason":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m in modules and m != module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "demo_data" not in p.parts]
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, modules) for p in paths}
    for module, targets in graph.items():  # importing a.b runs a/__init__.py too: empty, so no edge
        graph[module] = {t for t in targets if t}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) > layer(a))


def test_no_import_circle_and_no_import_upwards():
    graph = import_graph()
    assert len(graph) > 30 and any(graph.values())  # the package was read
    assert circles(graph) == []
    assert upward(graph) == []
    assert all(not graph[m] for m in BASE)


def test_the_checks_find_a_circle_and_an_upward_import():
    graph = {"core.rules": {"io.find"}, "io.find": {"core.rules"}, "gui.dock": {"core.rules"}}
    assert circles(graph) == [["core.rules", "io.find"]]
    assert upward(graph) == ["core.rules -> io.find"]


def test_sub_packages_init_files_are_empty():
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE and "demo_data" not in p.parts]
    assert {p.parent.name for p in inits} == set(LAYERS)
    assert {p.parent.name: p.read_text(encoding="utf-8").strip() for p in inits} == dict.fromkeys(LAYERS, "")


def test_long_modules_say_they_are_one_job():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "one job" not in docstring.lower():
                long[module_name(path)] = len(text.splitlines())
    assert long == {}
