"""Data flows one way: every import inside the package (at the top of a module or inside a
function) goes to the same layer or a lower one, and no modules import each other in a cycle.
A new module must be given its layer here."""

from __future__ import annotations

import ast
from pathlib import Path

import rag

PACKAGE = Path(rag.__file__).parent

# Lowest first: loaders -> chunker -> embedder -> store -> retriever -> reader/generator -> verifier -> decision
# -> clients.
LAYERS: list[tuple[str, ...]] = [
    ("rag.fsutil", "rag.models", "rag.threads", "rag.metrics", "rag.bounds", "rag.lexical", "rag.settings",
     "rag.errors"),
    ("rag.ingest.loaders", "rag.ingest.sandbox", "rag.ingest.scan"),
    ("rag.ingest.chunker",),
    ("rag.embed", "rag.crossencoder"),
    ("rag.vectors", "rag.catalog", "rag.store"),
    ("rag.ingest.work", "rag.ingest.local", "rag.ingest.distributed", "rag.ingest.pipeline"),
    ("rag.retrieve", "rag.rerank", "rag.index"),
    ("rag.reader", "rag.generate", "rag.answer", "rag.conversation"),
    ("rag.verify",),
    ("rag.decision",),
    ("rag.pipeline",),
    ("rag.training",),
    ("rag.evaluation",),
    ("rag.cli", "rag.service", "rag.uploads", "rag.server", "rag.__main__", "rag"),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports anywhere in its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rag":
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                out.add(name if name in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "rag"}
    return out


def layer(module: str) -> int:
    """The layer of the longest prefix that names `module` or a package holding it."""
    best = max(((len(p), n) for n, group in enumerate(LAYERS) for p in group
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} has no layer: give it one in tests/test_layers.py"
    return best[1]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_every_import_goes_to_the_same_layer_or_below() -> None:
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The walk finds imports inside functions too (where the old cycles hid)."""
    code = tmp_path / "m.py"
    code.write_text("def f():\n    from rag.ingest import distributed\n    import rag.pipeline\n")
    found = imports(code, modules())
    assert found == {"rag.ingest.distributed", "rag.pipeline"}
    assert layer("rag.pipeline") > layer("rag.store") > layer("rag.ingest.chunker")
