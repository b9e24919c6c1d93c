"""The Compare table: marked runs side by side as rows of fields, one column per run (plain Python).

Each row holds one raw value per run and the cells shown for them. Every benchmark row is followed
by the same metric of the dense model where the runs benchmarked it (their reference). Numbers other than the
baseline's carry their signed delta to the baseline's value, "(+0.52)". Removed-block masks are
aligned by layer index: character i of the mask is block i, `REMOVED_GLYPH` when removed, `KEPT_GLYPH`
when kept. "differences only" keeps the rows whose raw values are
not all equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.events import SpeedMeasured
from ..core.tables import jaccard, render, speed_summary
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

    def dense_tasks(self) -> dict[str, dict]:
        """The dense model's benchmark scores stored in this run (its reference), {} without them."""
        return self.view.dense.tasks if self.view.dense else {}

    def speed(self) -> dict:
        """Pruned/dense speed ratios of the latest `speed` event for this run's removal set (None values without one)."""
        found = [
            e for e in self.view.others if isinstance(e, SpeedMeasured) and tuple(sorted(e.removed)) == self.removed
        ]
        return speed_summary(found[-1] if found else None)


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


def incomparable(runs: list[RunSummary]) -> list[str]:
    """Why some rows are not compared across `runs`: objective values only between runs of the
    same objective, masks and overlaps only between models with the same block count; partial
    (unfinished) results are marked."""
    notes = []
    if len({r.view.objective for r in runs}) > 1:
        notes.append("objectives differ: no value deltas across objectives")
    if len({r.view.n_blocks for r in runs}) > 1:
        notes.append("block counts differ: masks and Jaccard only between runs of the same block count")
    partial = [letter(i) for i, r in enumerate(runs) if r.state != "finished"]
    if partial:
        notes.append(f"{', '.join(partial)}: not finished, best set so far (partial)")
    return notes


def compare(runs: list[RunSummary], baseline: int = 0) -> list[CompareRow]:
    """All rows comparing `runs`, deltas against `runs[baseline]` (only where comparable, see
    `incomparable`)."""
    base = runs[baseline]
    rows = [_text_row(field, [r.view.config.get(field) for r in runs]) for field in ("model", "searcher", "k", "seed")]
    rows.append(_text_row("blocks", [r.view.n_blocks or None for r in runs]))
    rows.append(_text_row("objective", [r.view.objective for r in runs]))
    rows.append(_text_row("state", [r.state for r in runs]))
    rows.append(_numeric_row("candidates", [r.view.done for r in runs], baseline))
    value = _numeric_row("value", [r.value for r in runs], baseline)
    for i, r in enumerate(runs):
        if r.view.objective != base.view.objective and r.value is not None:
            value.cells[i] = f"{r.value:.4g} ({r.view.objective})"
    rows.append(value)
    rows.append(
        _text_row("removed", [list(r.removed) + (["(partial)"] if r.state != "finished" else []) for r in runs])
    )
    rows.append(_text_row("mask", [mask(r.removed, r.view.n_blocks) for r in runs]))
    for j, other in enumerate(runs):
        overlap = [
            round(jaccard(r.removed, other.removed), 4) if r.view.n_blocks == other.view.n_blocks else None
            for r in runs
        ]
        row = _numeric_row(f"jaccard {letter(j)}", overlap, baseline)
        row.cells = ["n/a (blocks differ)" if v is None else c for v, c in zip(overlap, row.cells)]
        rows.append(row)
    for task in dict.fromkeys(t for r in runs for t in r.tasks()):
        metrics = [r.tasks().get(task) for r in runs]
        name = next(primary_metric(m)[0] for m in metrics if m)
        rows.append(_numeric_row(f"{task} {name}", [m.get(name) if m else None for m in metrics], baseline))
        dense = [r.dense_tasks().get(task) for r in runs]
        if any(dense):  # the reference of the row above, as each run measured it
            rows.append(_numeric_row(f"{task} {name} dense", [m.get(name) if m else None for m in dense], baseline))
    speeds = [r.speed() for r in runs]
    if any(s["decode_x"] is not None for s in speeds):  # measured by `depthprune speed --run`
        for key, label in (
            ("decode_x", "decode × dense"),
            ("ideal_decode_x", "ideal decode ×"),
            ("params_x", "params × dense"),
        ):
            rows.append(_numeric_row(label, [s[key] for s in speeds], baseline))
    return rows


ALWAYS = ("model", "k", "seed", "state")  # what the runs are: kept with differences only


def visible(rows: list[CompareRow], differences_only: bool) -> list[CompareRow]:
    return [r for r in rows if r.differs or r.label in ALWAYS] if differences_only else rows


def export(rows: list[CompareRow], runs: list[RunSummary], fmt: str, baseline: int = 0) -> str:
    """The rows as shown, one column per run (headed by its letter and id, as in the legend).
    md: the cells as shown; csv: raw values (numbers stay numbers), each non-baseline number's
    delta to the baseline in its own `<letter> delta` column."""
    names = [f"{letter(i)} {run.id}" for i, run in enumerate(runs)]
    if fmt == "md":
        return render([{"field": r.label, **dict(zip(names, r.cells))} for r in rows], fmt)
    out = []
    for r in rows:
        line: dict = {"field": r.label}
        base = r.values[baseline]
        for i, (name, value) in enumerate(zip(names, r.values)):
            line[name] = value
            numeric = isinstance(value, (int, float)) and isinstance(base, (int, float)) and not isinstance(value, bool)
            line[f"{letter(i)} delta"] = round(value - base, 6) if numeric and i != baseline else None
        out.append(line)
    return render(out, fmt)
