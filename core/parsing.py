"""Parsers of what users type and write: comma lists and key=value options (flags, TUI fields, study
files), and TOML files (study files, the TUI's settings and themes)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_toml(path: Path, what: str, source: str | None = None) -> dict:
    """The TOML file `path` as a dict; a UserError naming it (`what`: "study file", "theme file", ...;
    `source`: where its path came from, e.g. "--config") when it is missing, not a text file or not TOML."""
    named = f"{what} {str(path)!r}" + (f" (from {source})" if source else "")
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{named} not found") from None
    except (OSError, UnicodeDecodeError):
        raise UserError(f"{named} is not a TOML text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML ({exc})") from None


def parse_indices(text: str, source: str) -> list[int]:
    """'3,7,9' -> [3, 7, 9]; empty -> []. Only ASCII digits with an optional minus sign: Python's
    `int` would also read '1_0' as 10 and '٣' as 3."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not re.fullmatch(r"-?[0-9]+", part):
            raise UserError(f"block index {part!r} (from {source}) is not an integer")
        out.append(int(part))
    return out


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_options(items: list[str]) -> dict:
    """`--option width=3 --option mode=mi` -> {"width": 3, "mode": "mi"} (values read as JSON when they parse)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"searcher option {item!r} (from --option) is not key=value")
        if key in out:
            raise UserError(f"searcher option {key!r} (from --option) given twice")
        try:
            out[key] = json.loads(value)
        except (ValueError, RecursionError):  # not JSON (or nested too deeply): the text itself
            out[key] = value
    return out
