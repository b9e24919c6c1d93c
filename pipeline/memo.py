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
    an append-only JSON-lines file `<runs_dir>/memo/<key>.jsonl` (torn last lines ignored). A line of
    an objective made of terms (a mix) also holds the terms ({term: value}, `terms`); lines written
    before terms were recorded have none."""

    def __init__(self, runs_dir: Path, identity: dict):
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.path = runs_dir / "memo" / f"{key}.jsonl"
        self.values: dict[frozenset, float] = {}
        self.terms: dict[frozenset, dict[str, float]] = {}
        for line in complete_lines(self.path):
            try:
                row = loads(line)
                removed, value, terms = row["removed"], row["value"], row.get("terms")
                if has_type(removed, list[int]) and has_type(value, float) and has_type(terms, dict[str, float] | None):
                    self.values[frozenset(removed)] = float(value)
                    if terms is not None:
                        self.terms[frozenset(removed)] = {name: float(t) for name, t in terms.items()}
            except (KeyError, TypeError, ValueError, RecursionError, AttributeError):
                continue  # a foreign or damaged line costs a re-evaluation, nothing else

    def add(self, removed: frozenset, value: float, terms: dict[str, float] | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row: dict = {"removed": sorted(removed), "value": value}
        if terms is not None:
            row["terms"] = terms
        append_line(self.path, json.dumps(row))
        self.values[removed] = value
        if terms is not None:
            self.terms[removed] = terms
