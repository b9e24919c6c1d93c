"""The Compare table: marked runs side by side as rows of fields, one column per run (plain Python).

Each row holds one raw value per run and the cells shown for them. Numbers other than the
baseline's carry their signed delta to the baseline's value, "(+0.52)". Removed-block masks are
aligned by layer index: character i of the mask is block i, `REMOVED_GLYPH` when removed, `KEPT_GLYPH`
when kept. "differences only" keeps the rows whose raw values are
not all equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.tables import jaccard, render
from .viewmodel import RunView, primary_metric

REMOVED_GLYPH = "✖"
KEPT_GLYPH = "·"


@dataclass
class RunSummary:
    """One marked run: its id, state and folded events."""

    id: str
    state: str
    view: RunView

    @property
    def removed(self) -> tuple[int, ...]:
        return self.view.removed

    @property
    def value(self) -> float | None:
        found = self.view.configurations.get(self.removed)
        return found.value if found else None

    def tasks(self) -> dict[str, dict]:
        found = self.view.configurations.get(self.removed)
        return found.tasks if found else {}


@dataclass
class CompareRow:
    label: str
    values: list
    cells: list[str]

    @property
    def differs(self) -> bool:
        return any(v != self.values[0] for v in self.values[1:])


def mask(removed: tuple[int, ...], n_blocks: int) -> str:
    """The removed-block mask of `removed` over `n_blocks` layers: character i is block i."""
    return "".join(REMOVED_GLYPH if i in removed else KEPT_GLYPH for i in range(n_blocks))


def letter(i: int) -> str:
    """Column name of the i-th marked run: A, B, ..."""
    return chr(ord("A") + i) if i < 26 else f"R{i}"


def _number(value, base) -> str:
    if value is None:
        return "—"
    text = f"{value:.4g}"
    if base is None:
        return text
    return f"{text} ({value - base:+.3g})"


def _numeric_row(label: str, values: list, baseline: int) -> CompareRow:
    base = values[baseline]
    return CompareRow(label, values, [_number(v, base if i != baseline else None) for i, v in enumerate(values)])


def _text_row(label: str, values: list) -> CompareRow:
    return CompareRow(label, values, ["—" if v is None else str(v) for v in values])


def compare(runs: list[RunSummary], baseline: int = 0) -> list[CompareRow]:
    """All rows comparing `runs`, deltas against `runs[baseline]`."""
    n_blocks = max((r.view.n_blocks for r in runs), default=0)
    rows = [_text_row(field, [r.view.config.get(field) for r in runs]) for field in ("model", "searcher", "k", "seed")]
    rows.append(_text_row("objective", [r.view.objective for r in runs]))
    rows.append(_text_row("state", [r.state for r in runs]))
    rows.append(_numeric_row("evaluations", [r.view.done for r in runs], baseline))
    rows.append(_numeric_row("value", [r.value for r in runs], baseline))
    rows.append(_text_row("removed", [list(r.removed) for r in runs]))
    rows.append(_text_row("mask", [mask(r.removed, n_blocks) for r in runs]))
    for j, other in enumerate(runs):
        rows.append(_numeric_row(f"jaccard {letter(j)}", [round(jaccard(r.removed, other.removed), 4) for r in runs],
                                 baseline))
    for task in dict.fromkeys(t for r in runs for t in r.tasks()):
        metrics = [r.tasks().get(task) for r in runs]
        name = next(primary_metric(m)[0] for m in metrics if m)
        rows.append(_numeric_row(f"{task} {name}", [m.get(name) if m else None for m in metrics], baseline))
    return rows


def visible(rows: list[CompareRow], differences_only: bool) -> list[CompareRow]:
    return [r for r in rows if r.differs] if differences_only else rows


def export(rows: list[CompareRow], runs: list[RunSummary], fmt: str) -> str:
    """The rows as shown, in `report.render`'s md or csv, one column per run id."""
    return render([{"field": r.label, **{run.id: cell for run, cell in zip(runs, r.cells)}} for r in rows], fmt)
