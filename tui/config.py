"""The user's TUI settings: `<config dir>/config.toml` and `<config dir>/themes/`.

config.toml (every key optional):

    theme = "depthprune-light"        # any theme name, shipped, user or Textual built-in
    [keys]                           # action id = keys (comma-separated), see tui/actions.py
    "live.stop" = "X"

The config dir is platformdirs' user config dir for "depthprune" (on Linux ~/.config/depthprune).
A broken file never stops the app: its problems are reported and the defaults apply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from ..core.errors import UserError
from ..core.parsing import read_toml
from .actions import keymap_problems


def default_config_dir() -> Path:
    return platformdirs.user_config_path("depthprune")


@dataclass
class Settings:
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def load_settings(config_dir: Path) -> Settings:
    """The settings in `config_dir/config.toml` (defaults when absent); bad entries are dropped
    and named in `problems`."""
    path = config_dir / "config.toml"
    if not path.is_file():
        return Settings()
    try:
        data = read_toml(path, "settings file")
    except UserError as exc:
        return Settings(problems=[str(exc)])
    settings = Settings()
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        settings.problems.append(f"{path.name}: theme must be a string")
    else:
        settings.theme = theme
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        settings.problems.append(f"{path.name}: [keys] must be a table")
        keys = {}
    bad = keymap_problems(keys)
    settings.problems += [f"{path.name}: [keys] {p}" for p in bad]
    settings.keys = {k: v for k, v in keys.items() if not keymap_problems({k: v})}
    unknown = set(data) - {"theme", "keys"}
    settings.problems += [f"{path.name}: unknown key {k!r}" for k in sorted(unknown)]
    return settings


def save_theme(config_dir: Path, theme: str) -> None:
    """Set `theme = "..."` in config_dir/config.toml, keeping every other line as it is."""
    path = config_dir / "config.toml"
    text = path.read_text() if path.is_file() else ""
    line = f"theme = {json.dumps(theme)}"  # a JSON string is a valid TOML basic string
    lines = text.splitlines()
    top = next((i for i, old in enumerate(lines) if old.lstrip().startswith("[")), len(lines))  # top-level keys end
    found = next((i for i in range(top) if re.match(r"\s*theme\s*=", lines[i])), None)
    if found is None:
        lines.insert(0, line)
    else:
        lines[found] = line
    config_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
