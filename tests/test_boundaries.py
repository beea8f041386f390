"""Imports point one way, and each room keeps to its side (ARCHITECTURE.md in the repo root's
README "Layout"): every import in the source, at module level or inside a function, is read
from the syntax tree and checked against the rules; a fresh interpreter then proves what
actually loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotations", "db", "core")
APP_DIR = "app"
HEAVY = {"torch", "torchvision", "segmentation_models_pytorch", "pytorch_grad_cam", "timm"}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: frozenset[str]  # first-party modules and top-level third-party names
    in_app: bool  # a page or component under app/


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] == APP_DIR:  # `streamlit run app/main.py` puts app/ on the path
        parts = parts[1:] or ["main"]
    return ".".join(parts)


def scan(root: Path) -> dict[str, Module]:
    """Every module under the packages and app/, with what it imports (function-level too)."""
    files = [
        p
        for top in (*PACKAGES, APP_DIR)
        for p in sorted((root / top).rglob("*.py"))
        if "migrations" not in p.parts
    ]
    names = {_module_name(root, p): p for p in files}
    modules = {}
    for name, path in names.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in names else base)
        resolved = set()
        for target in found:
            # The nearest first-party module, else the third-party top-level name.
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                if ".".join(parts[:i]) in names:
                    resolved.add(".".join(parts[:i]))
                    break
            else:
                resolved.add(parts[0])
        resolved.discard(name)
        in_app = path.relative_to(root).parts[0] == APP_DIR
        modules[name] = Module(name, path, frozenset(resolved), in_app)
    return modules


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(modules: dict[str, Module]) -> list[str]:
    """Every import that breaks a rule, as 'importer -> imported: rule'."""
    out = []
    app_modules = {n for n, m in modules.items() if m.in_app}
    for m in modules.values():
        for dep in m.imports:

            def bad(rule: str, m=m, dep=dep) -> None:
                out.append(f"{m.name} -> {dep}: {rule}")

            if _within(m.name, "annotations") and (
                _within(dep, "core", "db", "sqlalchemy", "streamlit") or dep in HEAVY
            ):
                bad("annotations is pure: no core, db, torch, sqlalchemy or streamlit")
            if _within(m.name, "db") and (_within(dep, "core", "streamlit") or dep in HEAVY):
                bad("db knows tables and queries only: no core, torch or streamlit")
            if _within(m.name, "core") and (dep in app_modules or _within(dep, "streamlit")):
                bad("core never imports streamlit or the app")
            if _within(m.name, "core.ml") and _within(
                dep,
                "db",
                "sqlalchemy",
                "core.workspace",
                "core.labels",
                "core.ingest",
                "core.interchange",
                "core.jobs",
                "core.tasks",
                "core.review",
                "core.versions",
                "core.cli",
                "core.accounts",
            ):
                bad("core.ml is torch only: no database, workspace or services")
            if _within(m.name, "core.accounts") and _within(
                dep,
                "core.imaging",
                "core.labels",
                "core.ingest",
                "core.interchange",
                "core.jobs",
                "core.tasks",
                "core.review",
                "core.versions",
                "core.cli",
                "core.ml",
            ):
                bad("core.accounts sits below every service (each calls require): it imports none")
            if _within(m.name, "core.jobs") and dep.startswith("core.tasks."):
                bad("core.jobs knows job kinds only through the registry (core.tasks)")
            if m.name in app_modules and _within(dep, "db", "sqlalchemy"):
                bad("pages call core services: no db, no SQL")
            if m.name in app_modules and dep in HEAVY:
                bad("pages never import torch")
    return sorted(out)


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Import cycles among first-party modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in modules:
                continue
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return scan(REPO_ROOT)


def test_every_room_is_scanned(modules):
    for name in ("core.vocab", "core.ml.models", "core.jobs.queue", "core.tasks", "db.queries"):
        assert name in modules
    assert "main" in modules and "app_pages.annotate" in modules


def test_no_import_breaks_a_boundary_rule(modules):
    assert violations(modules) == []


def test_there_is_no_import_cycle(modules):
    assert cycles(modules) == []


def _fake_tree(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for top in (*PACKAGES, APP_DIR):
        (root / top).mkdir(exist_ok=True)
    return scan(root)


def test_the_checks_catch_a_cycle_and_forbidden_imports(tmp_path):
    """The rules above would fail on a violation (a cycle through a function-level import,
    core.ml reaching the database, a page importing db, jobs importing a task module)."""
    mods = _fake_tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "def f():\n    from core import b\n",
            "core/b.py": "import core.a\n",
            "core/ml/__init__.py": "",
            "core/ml/loop.py": "from db.models import Job\n",
            "core/jobs/__init__.py": "",
            "core/jobs/run.py": "from core.tasks.train import run\n",
            "core/tasks/__init__.py": "",
            "core/tasks/train.py": "def run(): pass\n",
            "db/__init__.py": "",
            "db/models.py": "class Job: pass\n",
            "app/main.py": "from db.queries import x\nimport torch\n",
        },
    )
    assert cycles(mods) == [["core.a", "core.b"]]
    found = violations(mods)
    assert any(v.startswith("core.ml.loop -> db.models") for v in found)
    assert any(v.startswith("core.jobs.run -> core.tasks.train") for v in found)
    assert any(v.startswith("main -> db:") or v.startswith("main -> db.") for v in found)
    assert any(v.startswith("main -> torch") for v in found)


def _probe(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded_after(imports: Iterable[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {sorted(imports)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    return set(_probe(code))


@pytest.mark.parametrize(
    ("room", "absent"),
    [
        ("annotations", {"torch", "sqlalchemy", "streamlit", "core", "db"}),
        ("db", {"torch", "streamlit", "core"}),
        ("core.ml", {"sqlalchemy", "db", "streamlit"}),
    ],
)
def test_importing_a_room_loads_nothing_it_must_not(modules, room, absent):
    names = [n for n in modules if _within(n, room)]
    assert names
    assert _loaded_after(names) & absent == set()


def test_the_modules_pages_import_load_no_torch(modules):
    """Opening any page costs no torch import: what pages import of core/annotations is
    torch-free at import time (Grad-CAM loads it on first use, core.review.explain)."""
    page_deps = {
        dep for m in modules.values() if m.in_app for dep in m.imports if _within(dep, *PACKAGES)
    }
    assert "core.tasks.submit" in page_deps and "core.review.explain" in page_deps
    assert _loaded_after(page_deps) & HEAVY == set()
