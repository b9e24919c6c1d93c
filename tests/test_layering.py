"""The import rules of ARCHITECTURE.md, enforced: each package imports only from the layers below it.

Layers, lowest first: core (the engine: models, blocks, scoring, tasks, runs) → objectives, searchers
(independent of each other) → pipeline (the search loop and a search's wiring) → heal (recovery) →
study (grids of searches, healed or not) → cli, tui (the two faces, which never import each other).
The engine never imports Textual.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": {"core"},
    "objectives": {"core", "objectives"},
    "searchers": {"core", "searchers"},
    "pipeline": {"core", "objectives", "searchers", "pipeline"},
    "study": {"core", "objectives", "searchers", "pipeline", "heal", "study"},
    "heal": {"core", "objectives", "pipeline", "heal"},
    "cli": {"core", "objectives", "searchers", "pipeline", "study", "heal", "cli"},
    "tui": {"core", "objectives", "searchers", "pipeline", "study", "heal", "tui", "themes"},
}
UI_FREE = ("core", "objectives", "searchers", "pipeline", "study", "heal")


def project_imports(path: Path) -> set[str]:
    """Top-level project packages a file imports (relative imports resolved against its location)."""
    package = path.relative_to(ROOT).parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - node.level + 1]
            target = (*base, *(node.module.split(".") if node.module else ()))
            if target:
                names.add(target[0])
            elif node.module is None:  # `from . import x` at the root
                names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("depthprune."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("depthprune.")}
    return names


def third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_each_package_imports_only_from_the_layers_below_it():
    offenders = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py") if (ROOT / package).is_dir() else ():
            bad = project_imports(path) - allowed
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_the_rules_catch_a_violation(tmp_path):
    """The checker itself can fail: a core module importing the TUI is reported."""
    fake = ROOT / "core" / "_layering_probe.py"
    fake.write_text("from ..tui import app\n")
    try:
        assert project_imports(fake) == {"tui"}
    finally:
        fake.unlink()


def test_engine_sources_never_import_textual():
    offenders = []
    for pkg in UI_FREE:
        for path in (ROOT / pkg).rglob("*.py") if (ROOT / pkg).is_dir() else ():
            if "textual" in third_party_imports(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_importing_the_engine_does_not_load_textual():
    code = (
        "import sys; import depthprune.core.engine, depthprune.core.evaluate, depthprune.objectives, "
        "depthprune.searchers, depthprune.pipeline.prune, depthprune.study.runner; print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
