"""Runs: every run in the runs directory, sortable and filterable; mark runs for Compare.

Rows come from `core.tables.run_row` (the same fields `depthprune runs ls` prints). The list reloads
every `RELOAD_SECONDS` while the screen is shown, so states move from running to finished.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ...core.runs import Run, list_runs
from ...core.tables import run_row
from ..actions import bindings
from ..comparison import REMOVED_GLYPH
from ..screens.live import blocks

COLUMNS = ("state", "model", "objective", "searcher", "k", "value", "removed", "run")  # the long id last
NARROW = ("state", "k", "value", "removed", "run")  # under WIDE columns of terminal (model etc. are in the id)
WIDE = 120
RELOAD_SECONDS = 2.0
MARK = "●"


def cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, list):
        return blocks(value)
    return str(value)


def sort_key(value):
    """Numbers before text, missing values last."""
    return (value is None, not isinstance(value, (int, float)), value if isinstance(value, (int, float)) else str(value))


class RunsScreen(Screen):
    SCOPE = "runs"
    BINDINGS = bindings("runs")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[dict] = []
        self.runs: dict[str, Run] = {}
        self.marked: list[str] = []  # in marking order: the first is Compare's initial baseline
        self.sort_column = COLUMNS.index("run")  # ids start with the start time: oldest first
        self.reverse = False

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        filter_input = Input(placeholder="/ filter: any text in the row", id="filter", compact=True)
        filter_input.cursor_blink = False
        yield filter_input
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(RELOAD_SECONDS, self.reload)
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        self.refill()

    def shown_columns(self) -> tuple[str, ...]:
        return COLUMNS if self.size.width >= WIDE else NARROW

    def reload(self) -> None:
        runs = list_runs(self.app.runs_dir)
        rows = [run_row(run) for run in runs]
        if rows != self.rows:
            self.rows, self.runs = rows, {run.id: run for run in runs}
            self.marked = [m for m in self.marked if m in self.runs]
            self.refill()

    def visible_rows(self) -> list[dict]:
        needle = self.query_one("#filter", Input).value.strip().lower()
        rows = [r for r in self.rows if needle in " ".join(cell(r[c]) for c in COLUMNS).lower()]
        column = COLUMNS[self.sort_column]
        return sorted(rows, key=lambda r: sort_key(r[column]), reverse=self.reverse)

    def refill(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_id()
        columns = self.shown_columns()
        if tuple(str(c.label) for c in table.columns.values())[1:] != columns:
            table.clear(columns=True)
            table.add_column(" ", key="mark", width=1)
            table.add_columns(*columns)
        table.clear()
        rows = self.visible_rows()
        for row in rows:
            table.add_row(MARK if row["run"] in self.marked else " ", *(cell(row[c]) for c in columns), key=row["run"])
        ids = [row["run"] for row in rows]
        if current in ids:
            table.move_cursor(row=ids.index(current))
        arrow = "▼" if self.reverse else "▲"
        self.query_one("#title", Static).update(
            f"[b]Runs[/b] in {self.app.runs_dir} · {len(self.rows)} runs · {len(self.marked)} marked · "
            f"sorted by {COLUMNS[self.sort_column]} {arrow} · {REMOVED_GLYPH} removed")

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(Input.Changed, "#filter")
    def filtered(self) -> None:
        self.refill()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)
        self.refill()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.refill()

    def action_reload(self) -> None:
        self.rows = []
        self.reload()

    def action_mark(self) -> None:
        run_id = self.current_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.refill()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        run_id = self.current_id()
        if run_id is not None:
            self.app.open_live(self.runs[run_id])

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark at least two runs (space) to compare", severity="warning")
            return
        self.app.open_compare([self.runs[m] for m in self.marked])
