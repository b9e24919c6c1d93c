"""Study: one study's grid progress, its cells (state, live progress and worker of each; Enter opens
a cell's run in the Live screen) and, per (model, k) group and objective, the report's Table 1/2,
the removed-layer masks of every objective and searcher, rank agreement, spread and search cost.

Everything comes from `study_view` (the report of `study.report.build`); the study is read in a
worker every `RELOAD_SECONDS` (the first paint has it) and redrawn only when something changed, so a
running study updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...core.errors import UserError
from ...core.runs import Run
from ...study.results import open_study
from ..actions import bindings
from ..runs_index import RunsIndex
from ..study_view import CellRow, StudyView, agreement_lines, cell_rows, cost_table, load, results_table
from ..widgets.table import RowTable
from .runs import RELOAD_SECONDS

CELL_COLUMNS = ("cell", "state", "progress", "worker")

TEXT_COLUMNS = ("searcher", "removed")


def table(header: list[str], rows: list[list[str]]) -> Table:
    """A compact Rich table: the `TEXT_COLUMNS` left-aligned, numbers right-aligned, nothing wrapped."""
    out = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold", show_edge=False)
    for name in header:
        out.add_column(name, justify="left" if name in TEXT_COLUMNS else "right", no_wrap=True)
    for cells in rows:
        out.add_row(*cells)
    return out


@dataclass
class StudyLoaded(Message):
    view: StudyView
    cells: list[CellRow]


class StudyScreen(Screen):
    SCOPE = "study"
    BINDINGS = bindings("study")

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.study = name
        self.view: StudyView | None = None
        self.cells: list[CellRow] | None = None
        self.index: RunsIndex | None = None
        self.group = 0
        self.objective = 0

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with ScrollableContainer(id="study-body"):
            yield Static("Cells (Enter opens a cell's run)", classes="pane-title")
            yield RowTable(id="cells", cursor_type="row", zebra_stripes=True)
            yield Static(id="heading")
            yield Static(id="results", classes="report natural")
            yield Static(
                "Removed layers (█ removed, · kept), every objective", id="masks-title", classes="report pane-title"
            )
            yield Static(id="masks", classes="report natural")
            yield Static(id="agreement", classes="report")
            yield Static(id="cost-title", classes="report pane-title")
            yield Static(id="cost", classes="report natural")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.index = RunsIndex(self.app.runs_dir)
        self.query_one("#cells", DataTable).add_columns(*CELL_COLUMNS)
        self.apply(*self.read())  # the first paint has the study
        self.set_interval(RELOAD_SECONDS, self.reload)
        self.query_one("#cells").focus()

    def read(self) -> tuple[StudyView, list[CellRow]]:
        """The study and its cells as on disk now (file reading and the report's analyses: off the loop
        but for the first paint)."""
        view = load(self.study, self.app.runs_dir)
        try:
            config, _ = open_study(self.study, self.app.runs_dir)
        except UserError:
            return view, []  # the view says why
        return view, cell_rows(config, self.app.runs_dir, self.index)

    @work(thread=True, exclusive=True, group="study")
    def reload(self) -> None:
        self.post_message(StudyLoaded(*self.read()))

    @on(StudyLoaded)
    def loaded(self, message: StudyLoaded) -> None:
        self.apply(message.view, message.cells)

    def apply(self, view: StudyView, cells: list[CellRow]) -> None:
        if cells != self.cells:
            self.cells = cells
            self.fill_cells()
        if view != self.view:
            self.view = view
            self.refill()

    def fill_cells(self) -> None:
        table = self.query_one("#cells", DataTable)
        cursor = table.cursor_row
        table.clear()
        models = len({c.cell.model for c in self.cells})
        for c in self.cells:
            table.add_row(*(Text(t) for t in (c.label(models), c.state, c.progress, c.worker)), key=c.run)
        table.move_cursor(row=min(cursor, len(self.cells) - 1))
        table.display = bool(self.cells)

    @on(DataTable.RowSelected, "#cells")
    def action_open(self) -> None:
        """Open the selected cell's run in the Live screen (it follows a running cell, replays a finished one)."""
        table = self.query_one("#cells", DataTable)
        if not table.row_count:
            return
        name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        try:
            run = Run.open(name, self.app.runs_dir)
        except UserError as exc:
            cell = next(c for c in self.cells if c.run == name)
            why = "not started yet" if cell.state == "not started" else str(exc)
            self.notify(f"cell {name}: {why}", severity="warning")
            return
        self.app.open_live(run)

    def objectives(self) -> list[str]:
        groups = self.view.groups
        return list(groups[self.group]["tables"]) if groups else []

    def refill(self) -> None:
        view = self.view
        self.group = min(self.group, max(0, len(view.groups) - 1))
        self.objective = min(self.objective, max(0, len(self.objectives()) - 1))
        status = view.progress.line() if view.progress else ""
        self.query_one("#title", Static).update(
            Text.assemble((f"Study {view.name}", "bold"), f" · {status}" if status else "")
        )
        self.query_one("#study-body").set_class(not view.groups, "empty")
        heading = self.query_one("#heading", Static)
        if not view.groups:
            heading.update(
                Text(
                    view.problem
                    or "no results yet: the tables appear once cells are searched and "
                    "their models evaluated on the study's suite"
                )
            )
            return
        group, objective = view.groups[self.group], self.objectives()[self.objective]
        heading.update(
            Text(
                f"{group['model']}, k = {group['k']} of {group['n_blocks']} blocks ({self.group + 1}/"
                f"{len(view.groups)}) · objective {objective} ({self.objective + 1}/"
                f"{len(self.objectives())}) · accuracy in %"
            )
        )
        self.query_one("#results", Static).update(table(*results_table(group, objective)))
        self.query_one("#masks", Static).update(Text(group["mask_text"]))
        self.query_one("#agreement", Static).update(Text("\n".join(agreement_lines(group, objective))))
        self.query_one("#cost-title", Static).update(f"Search cost, objective {objective}")
        self.query_one("#cost", Static).update(table(*cost_table(group, objective)))

    def action_next_group(self, delta: int) -> None:
        """Show the next (delta 1) or previous (-1) (model, k) group, wrapping around."""
        if self.view.groups:
            self.group = (self.group + delta) % len(self.view.groups)
            self.refill()

    def action_next_objective(self, delta: int) -> None:
        """Show the next (delta 1) or previous (-1) objective of the group, wrapping around."""
        if self.objectives():
            self.objective = (self.objective + delta) % len(self.objectives())
            self.refill()

    def action_back(self) -> None:
        self.app.pop_screen()
