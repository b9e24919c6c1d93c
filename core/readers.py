"""Reading data files with errors that name the file and line."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .errors import UserError


def builtin_file(name: str) -> Path:
    """A file of the built-in data pack (core/data)."""
    return Path(str(resources.files("depthprune.core") / "data" / name))


def read_text(path: Path, source: str) -> str:
    if not path.is_file():
        raise UserError(f"data file {str(path)!r} (from {source}) not found")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise UserError(f"data file {str(path)!r} (from {source}) is binary, expected text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"data file {str(path)!r} (from {source}) is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise UserError(f"data file {str(path)!r} (from {source}) is empty")
    return text


def read_jsonl(path: Path, source: str, required: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a JSON-lines file; blank lines are skipped; every row must hold `required` keys."""
    rows = []
    for lineno, line in enumerate(read_text(path, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg}) (from {source})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object (from {source})")
        missing = [k for k in required if k not in row]
        if missing:
            raise UserError(f"{path}:{lineno}: missing field {missing[0]!r} (from {source})")
        rows.append(row)
    return rows


def read_labels(path: Path, source: str, expected: int) -> list[int]:
    """One integer label a line; the file must have exactly `expected` lines."""
    labels = []
    for lineno, line in enumerate(read_text(path, source).splitlines(), start=1):
        try:
            labels.append(int(line.strip()))
        except ValueError:
            raise UserError(
                f"{path}:{lineno}: expected an integer label, got {line.strip()!r} (from {source})"
            ) from None
    if len(labels) != expected:
        raise UserError(f"labels file {str(path)!r} (from {source}) has {len(labels)} lines, expected {expected}")
    return labels
