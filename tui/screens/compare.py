"""Compare: the marked runs side by side (rows of fields, one column per run, deltas to a baseline).

Export writes `<runs_dir>/compare-<ids>.md|csv` with the rows as shown and also copies the text to
the clipboard through the terminal (OSC 52), which works over SSH in terminals that allow it.
"""

from __future__ import annotations

import hashlib

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...core.runs import Run
from ..actions import bindings
from ..comparison import RunSummary, compare, export, incomparable, letter, visible
from ..tail import EventTail
from ..viewmodel import RunView
from ..widgets.table import RowTable


def summarize(run: Run) -> RunSummary:
    """A run folded from its events (the same tail the Live screen reads)."""
    view = RunView(run.config)
    view.fold(EventTail(run.path / "events.jsonl").read())
    return RunSummary(run.id, run.state, view)


def export_name(ids: list[str], fmt: str) -> str:
    """compare-<first id>-<n>runs-<hash of all ids>.<fmt>: short, and the same runs give the same name."""
    digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:8]
    return f"compare-{ids[0][:40]}-{len(ids)}runs-{digest}.{fmt}"


class CompareScreen(Screen):
    SCOPE = "compare"
    BINDINGS = bindings("compare")

    def __init__(self, runs: list[Run], **kwargs):
        super().__init__(**kwargs)
        self.runs = [summarize(run) for run in runs]
        self.baseline = 0
        self.differences_only = False

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="legend")
        yield RowTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("field", key="field")
        for i, _run in enumerate(self.runs):
            table.add_column(letter(i), key=letter(i))
        self.refill()
        table.focus()

    def shown(self):
        return visible(compare(self.runs, self.baseline), self.differences_only)

    def refill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in self.shown():
            table.add_row(Text(row.label), *(Text(c) for c in row.cells))
        self.query_one("#title", Static).update(
            Text.assemble(
                ("Compare", "bold"),
                f" {len(self.runs)} runs · deltas to ",
                (letter(self.baseline), "bold"),
                " · differences only: ",
                ("on" if self.differences_only else "off", "bold"),
            )
        )
        legend = [
            f"{letter(i)} {run.id}{'  (baseline)' if i == self.baseline else ''}" for i, run in enumerate(self.runs)
        ]
        self.query_one("#legend", Static).update(Text("\n".join(legend + [f"⚠ {n}" for n in incomparable(self.runs)])))

    def action_toggle_differences(self) -> None:
        self.differences_only = not self.differences_only
        self.refill()

    def action_next_baseline(self) -> None:
        self.baseline = (self.baseline + 1) % len(self.runs)
        self.refill()

    def action_export(self, fmt: str) -> None:
        text = export(self.shown(), self.runs, fmt, self.baseline)
        path = self.app.runs_dir / export_name([run.id for run in self.runs], fmt)
        path.write_text(text + "\n")
        self.app.copy_to_clipboard(text)
        self.notify(f"wrote {path} (and copied it via the terminal)")

    def action_back(self) -> None:
        self.app.pop_screen()
