"""The memo shared by every run with the same model and objective configuration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..core.events import loads
from ..core.runs import append_line, complete_lines
from ..core.typecheck import has_type


class SharedMemo:
    """Complete objective values shared by every run with the same model and objective configuration:
    an append-only JSON-lines file `<runs_dir>/memo/<key>.jsonl` (torn last lines ignored)."""

    def __init__(self, runs_dir: Path, identity: dict):
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.path = runs_dir / "memo" / f"{key}.jsonl"
        self.values: dict[frozenset, float] = {}
        for line in complete_lines(self.path):
            try:
                row = loads(line)
                removed, value = row["removed"], row["value"]
                if has_type(removed, list[int]) and has_type(value, float):
                    self.values[frozenset(removed)] = float(value)
            except (KeyError, TypeError, ValueError, RecursionError):
                continue  # a foreign or damaged line costs a re-evaluation, nothing else

    def add(self, removed: frozenset, value: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps({"removed": sorted(removed), "value": value}))
        self.values[removed] = value
