"""The package's layers, read from the code: every import of signage/ against one table, no cycle.

    signage (create_app) -> web -> {services, actions, core, store}
    services -> {core, store, density, fleet, actions}     actions -> {core, store}
    fleet -> {core, density}                      core -> {density, calendars}
    config, logs and i18n: anyone may use them; cli: may use anything.

Imports under `if TYPE_CHECKING:` do not count (they never run). A function-level import outside
cli needs a comment on its line saying why (an optional dependency such as psycopg or redis).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "signage"

# Which layer a module belongs to: the longest matching prefix wins.
LAYER_OF = {
    "signage": "app",
    "signage.__main__": "cli",
    "signage.cli": "cli",
    "signage.web": "web",
    "signage.services": "services",
    "signage.actions": "actions",
    "signage.core": "core",
    "signage.fleet": "fleet",
    "signage.store": "store",
    "signage.density": "density",
    "signage.calendars": "calendars",
    "signage.sim": "sim",
    "signage.config": "shared",
    "signage.logs": "shared",
    "signage.i18n": "shared",
}

# What each layer may import from signage (besides itself and the shared modules).
ALLOWED = {
    "app": {"web", "services"},
    "cli": set(LAYER_OF.values()),
    "web": {"services", "actions", "core", "store"},
    # The composition root builds every long-lived object, the announcement scheduler and the
    # alert watcher (actions) among them; actions never import services back.
    "services": {"core", "store", "density", "fleet", "actions", "calendars"},
    "actions": {"core", "store"},
    "fleet": {"core", "density"},
    "core": {"density", "calendars"},
    "store": set(),
    "calendars": set(),
    "density": set(),
    "sim": set(),
    "shared": set(),
}

# Outside libraries a layer must not import: the core knows no web framework and no Redis; the
# use cases know no web framework; only the fleet talks to Redis.
FORBIDDEN_LIBRARIES = {
    "core": {"flask", "flask_sock", "werkzeug", "redis"},
    "actions": {"flask", "flask_sock", "werkzeug", "redis"},
    "services": {"flask", "flask_sock", "werkzeug"},
    "store": {"flask", "flask_sock", "werkzeug", "redis"},
    "density": {"flask", "flask_sock", "werkzeug", "redis"},
    "calendars": {"flask", "flask_sock", "werkzeug", "redis"},
    "fleet": {"flask", "flask_sock", "werkzeug"},
    "shared": {"flask", "flask_sock", "werkzeug", "redis"},
    "web": {"redis"},
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it is and whether it runs at module level."""

    source: str
    target: str
    line: int
    top_level: bool
    text: str


def module_name(path: Path, root: Path) -> str:
    """signage/core/feeds.py -> signage.core.feeds; a package's __init__ -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every import node with whether it runs when the module is imported, skipping the bodies
    of `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _walk_one(other, top_level)
            continue
        yield from _walk_one(child, top_level)


def _walk_one(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, top_level
        return
    nested = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    yield from _walk(node, top_level and not nested)


def imports_of(source: str, path: Path, known: set[str]) -> list[Import]:
    """The imports a module makes, each resolved to a module where it names one."""
    text = path.read_text()
    lines = text.splitlines()
    is_package = path.name == "__init__.py"
    found = []
    for node, top_level in _walk(ast.parse(text), True):
        line = lines[node.lineno - 1]
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = source.split(".") if is_package else source.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from signage.web import auth` imports the module signage.web.auth.
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                for a in node.names
            ]
        for target in dict.fromkeys(targets):
            found.append(Import(source, target, node.lineno, top_level, line.strip()))
    return found


def layer_of(module: str) -> str | None:
    """The layer of a signage module (None for a module outside signage)."""
    best = None
    for prefix in LAYER_OF:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return LAYER_OF[best] if best else None


def read_package(root: Path) -> tuple[set[str], list[Import]]:
    """Every module of the package under root, and every import they make."""
    paths = sorted(root.rglob("*.py"))
    known = {module_name(p, root) for p in paths}
    found: list[Import] = []
    for path in paths:
        found += imports_of(module_name(path, root), path, known)
    return known, found


def violations(root: Path) -> list[str]:
    """Every import that breaks the table, as readable lines (empty: the layers hold)."""
    known, found = read_package(root)
    problems = []
    for imp in found:
        source_layer = layer_of(imp.source)
        target_top = imp.target.split(".")[0]
        if imp.target == "signage" or imp.target.startswith("signage."):
            target_layer = layer_of(imp.target)
            if imp.target == "signage" and source_layer != "cli":
                # The package itself: only its version is shared (create_app is not).
                target_layer = "shared"
            if target_layer in (source_layer, "shared"):
                pass
            elif target_layer not in ALLOWED[source_layer]:
                problems.append(
                    f"{imp.source}:{imp.line} ({source_layer}) imports {imp.target}"
                    f" ({target_layer}): {imp.text}"
                )
        elif target_top in FORBIDDEN_LIBRARIES.get(source_layer, ()):
            problems.append(f"{imp.source}:{imp.line} ({source_layer}) imports {imp.text}")
        if not imp.top_level and source_layer != "cli" and "#" not in imp.text:
            problems.append(
                f"{imp.source}:{imp.line} imports inside a function without a comment saying"
                f" why: {imp.text}"
            )
    return problems


def cycles(root: Path) -> list[list[str]]:
    """Import cycles between signage's modules (every import that runs, not only top-level)."""
    known, found = read_package(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in found:
        if imp.target in known and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_every_import_follows_the_layers() -> None:
    problems = violations(PACKAGE)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_import_cycle() -> None:
    found = cycles(PACKAGE)
    assert not found, f"import cycles: {found}"


def test_every_module_belongs_to_a_layer() -> None:
    known, _ = read_package(PACKAGE)
    assert not [m for m in known if layer_of(m) is None or m == "signage.svgworker"]
    assert {layer_of(m) for m in known} >= {"web", "core", "store", "actions", "fleet"}


def test_no_module_longer_than_800_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 800
    }
    assert not long, f"modules over 800 lines: {long}"


# -- the checker itself fails on what it must catch ----------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "signage"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("module", "text"),
    [
        ("core/feeds.py", "from signage.web import kiosk\n"),
        ("core/feeds.py", "from signage.store import Store\n"),
        ("core/feeds.py", "import flask\n"),
        ("core/feeds.py", "from redis import Redis\n"),
        ("web/kiosk.py", "from signage.density.errors import DensityError\n"),
        ("web/kiosk.py", "from signage.fleet import Cluster\n"),
        ("actions/displays.py", "from signage.web import admin\n"),
        ("density/client.py", "from signage.sim import world\n"),
        ("sim/world.py", "from signage.density import models\n"),
        ("store/store.py", "from ..core import feeds\n"),
        ("services.py", "from flask import current_app\n"),
        ("core/hub.py", "def f():\n    from signage.core import feeds\n"),
    ],
)
def test_a_wrong_import_is_caught(tmp_path: Path, module: str, text: str) -> None:
    root = _package(
        tmp_path,
        {
            "web/kiosk.py": "",
            "web/admin.py": "",
            "core/feeds.py": "",
            "core/hub.py": "",
            "store/store.py": "",
            "density/errors.py": "",
            "density/models.py": "",
            "fleet/__init__.py": "",
            "sim/world.py": "",
            "actions/displays.py": "",
            "services.py": "",
        }
        | {module: text},
    )
    assert len(violations(root)) == 1, violations(root)


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "web/kiosk.py": "from signage.core import feeds\nfrom signage.store import Store\n",
            "core/feeds.py": "from signage.density import errors\nfrom signage import config\n",
            "core/hub.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from signage.store import Store\n",
            "store/store.py": "def f():\n    import psycopg  # optional: only with PostgreSQL\n",
            "density/errors.py": "",
            "config.py": "",
            "cli.py": "from signage.sim import world\nfrom signage.density import errors\n",
            "sim/world.py": "",
        },
    )
    assert violations(root) == []


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {"core/a.py": "from signage.core import b\n", "core/b.py": "from signage.core import a\n"},
    )
    assert cycles(root) == [["signage.core.a", "signage.core.b"]]
