"""The engine never imports Textual: core/, objectives/ and searchers/ stay UI-free."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_PACKAGES = ("core", "objectives", "searchers")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
            names.add("." + node.module.split(".")[0])
    return names


def test_engine_sources_never_import_textual_or_the_tui():
    offenders = []
    for pkg in ENGINE_PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            bad = imported_modules(path) & {"textual", ".tui", "tui"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []


def test_importing_the_engine_does_not_load_textual():
    code = ("import sys; import depthprune.core.engine, depthprune.core.evaluate, depthprune.objectives, "
            "depthprune.searchers; print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
