"""Studies: every study in the runs directory with its grid progress; Enter opens one in the Study screen.

The list reloads every `RELOAD_SECONDS` while shown, so a running study's counts move.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..actions import bindings
from ..study_view import StudyView, list_studies, load
from ..widgets.table import RowTable
from .runs import RELOAD_SECONDS
from .study import StudyScreen

COLUMNS = ("study", "finished", "evaluated", "other cells")  # cells finished, models evaluated; the long one last


def row(view: StudyView) -> tuple[str, ...]:
    """The list row of a study; an unreadable study.json shows its problem instead of counts."""
    grid = view.progress
    if grid is None:
        return view.name, "—", "—", view.problem or ""
    return view.name, f"{grid.cells['finished']}/{grid.total}", grid.models_text(), grid.others_text()


class StudiesScreen(Screen):
    SCOPE = "studies"
    BINDINGS = bindings("studies")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[tuple[str, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield RowTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.reload()
        self.set_interval(RELOAD_SECONDS, self.reload)
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        rows = [row(load(name, self.app.runs_dir, with_report=False)) for name in list_studies(self.app.runs_dir)]
        if rows == self.rows:
            return
        self.rows = rows
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for cells in rows:
            table.add_row(*cells, key=cells[0])
        table.move_cursor(row=min(cursor, len(rows) - 1))
        hint = f"{len(rows)} found · Enter opens one" if rows else "none yet: `depthprune study` writes them here"
        self.query_one("#title", Static).update(Text.assemble(("Studies", "bold"), f" in {self.app.runs_dir} · {hint}"))

    def action_back(self) -> None:
        self.app.back_from_mode()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.app.push_screen(StudyScreen(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))
