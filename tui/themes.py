"""Theme files: TOML mirroring Textual's `Theme` fields, plus the app's own colour variables.

A file holds `name` and `primary` (required), optionally secondary, accent, foreground, background,
surface, panel, boost, warning, error, success (colours), dark (bool), luminosity_spread and
text_alpha (numbers), and a `[variables]` table of literal colours: the app's `APP_VARIABLES` or any
Textual variable. A bad file raises ThemeError naming the file and the problem; the loader
collects these so one notification reports them all and the app falls back to a good theme.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from ..core.errors import UserError
from ..core.parsing import read_toml

COLOURS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)
NUMBERS = ("luminosity_spread", "text_alpha")
APP_VARIABLES = ("importance-high", "importance-low", "removed-layer", "best-score", "candidate")
DEFAULT_THEME = "depthprune-dark"


class ThemeError(Exception):
    pass


def _colour(path: Path, key: str, value) -> str:
    try:
        Color.parse(value)
    except (ColorParseError, TypeError, ValueError):
        raise ThemeError(
            f"{path.name}: {key} = {value!r} is not a colour (use #rrggbb, rgb(...) or a colour name)"
        ) from None
    return value


def load_theme(path: Path) -> Theme:
    """The Theme a file describes; ThemeError for anything wrong with it."""
    try:
        data = read_toml(path, "theme file")
    except UserError as exc:
        raise ThemeError(str(exc)) from None
    unknown = set(data) - {"name", "dark", "variables", *COLOURS, *NUMBERS}
    if unknown:
        raise ThemeError(f"{path.name}: unknown key {min(unknown)!r}")
    for key in ("name", "primary"):
        if not isinstance(data.get(key), str):
            raise ThemeError(f"{path.name}: {key} is required (a string)")
    if not isinstance(data.get("dark", True), bool):
        raise ThemeError(f"{path.name}: dark must be true or false")
    for key in NUMBERS:
        if key in data and not isinstance(data[key], (int, float)):
            raise ThemeError(f"{path.name}: {key} must be a number")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeError(f"{path.name}: [variables] must be a table")
    colours = {key: _colour(path, key, data[key]) for key in COLOURS if key in data}
    return Theme(
        name=data["name"],
        dark=data.get("dark", True),
        **colours,
        **{key: float(data[key]) for key in NUMBERS if key in data},
        variables={key: _colour(path, f"variables.{key}", value) for key, value in variables.items()},
    )


def theme_files(user_dir: Path | None) -> list[Path]:
    """The shipped theme files, then the user's (`<config dir>/themes/*.toml`)."""
    shipped = resources.files("depthprune.themes")
    files = sorted(Path(str(p)) for p in shipped.iterdir() if p.name.endswith(".toml"))
    if user_dir is not None and user_dir.is_dir():
        files += sorted(user_dir.glob("*.toml"))
    return files


def load_themes(files: list[Path]) -> tuple[list[Theme], list[str]]:
    """(the themes that loaded, one problem line per file that did not)."""
    themes, problems = [], []
    for path in files:
        try:
            themes.append(load_theme(path))
        except ThemeError as exc:
            problems.append(str(exc))
    return themes, problems


def variable_defaults(theme: Theme) -> dict[str, str]:
    """The app variables derived from a theme's own colours, for themes that do not set them."""
    return {
        "importance-high": theme.error or theme.primary,
        "importance-low": theme.success or theme.primary,
        "removed-layer": theme.warning or theme.primary,
        "best-score": theme.success or theme.primary,
        "candidate": theme.accent or theme.secondary or theme.primary,
    }
