"""Studies: every study in the runs directory with its grid progress; Enter opens one in the Study
screen, `n` starts a new one (a study TOML file, or the Setup fields × objectives × searchers).

The list is read in a worker every `RELOAD_SECONDS` while shown (the first paint has it), so a
running study's counts move. A started study is a `depthprune study` child process (`launch.py`);
the Study screen opens once its study.json exists, and a child that fails first shows its
one-line error here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...core.errors import UserError
from ...core.runs import slug
from ...study.runner import study_dir
from ..actions import bindings
from ..launch import Launch
from ..setup_form import field_message
from ..study_form import FIELDS, check, prepare, registries, study_argv
from ..study_view import StudyView, list_studies, load
from ..widgets.table import RowTable
from .form import FormModal
from .runs import RELOAD_SECONDS
from .study import StudyScreen

COLUMNS = ("study", "finished", "evaluated", "other cells")  # cells finished, models evaluated; the long one last


def row(view: StudyView) -> tuple[str, ...]:
    """The list row of a study; an unreadable study.json shows its problem instead of counts."""
    grid = view.progress
    if grid is None:
        return view.name, "—", "—", view.problem or ""
    return view.name, f"{grid.cells['finished']}/{grid.total}", grid.models_text(), grid.others_text()


def study_json_mtime(runs_dir: Path, name: str) -> int | None:
    try:
        return (study_dir(runs_dir, name) / "study.json").stat().st_mtime_ns
    except OSError:
        return None


def study_rows(runs_dir: Path) -> list[tuple[str, ...]]:
    return [row(load(name, runs_dir, with_report=False)) for name in list_studies(runs_dir)]


@dataclass
class StudiesLoaded(Message):
    rows: list[tuple[str, ...]]


class StudiesScreen(Screen):
    SCOPE = "studies"
    BINDINGS = bindings("studies")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[tuple[str, ...]] | None = None
        # a study child starting: its process, its study's name, study.json's mtime before it started
        self.pending: tuple[Launch, str, int | None] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield RowTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Static("", id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.apply_rows(study_rows(self.app.runs_dir))  # the first paint has the rows
        self.set_interval(RELOAD_SECONDS, self.reload)
        self.set_interval(0.25, self.watch_launch)
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, group="studies")
    def reload(self) -> None:
        self.post_message(StudiesLoaded(study_rows(self.app.runs_dir)))

    @on(StudiesLoaded)
    def loaded(self, message: StudiesLoaded) -> None:
        self.apply_rows(message.rows)

    def apply_rows(self, rows: list[tuple[str, ...]]) -> None:
        if rows == self.rows:
            return
        self.rows = rows
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for cells in rows:
            table.add_row(*cells, key=cells[0])
        table.move_cursor(row=min(cursor, len(rows) - 1))
        new = self.app.keys.get("studies.new", "n")
        hint = f"{len(rows)} found · Enter opens one · {new} starts one" if rows else f"none yet: {new} starts one"
        self.query_one("#title", Static).update(Text.assemble(("Studies", "bold"), f" in {self.app.runs_dir} · {hint}"))

    def action_back(self) -> None:
        self.app.back_from_mode()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.app.push_screen(StudyScreen(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def action_new_study(self) -> None:
        """The New study form: a study file, or the Setup fields crossed with the lists typed in it."""
        if self.pending is not None:
            self.notify("a study is already starting", severity="warning")
            return
        setup = dict(self.app.setup_values)
        runs_dir = self.app.runs_dir
        known = registries()
        initial = {
            "file": "",
            "name": f"{slug(setup['model'].strip())[:48]}-k{setup['k'].strip()}",
            "objectives": setup["objective"],
            "searchers": setup["searcher"],
            "baselines": "random,tail",
        }
        title = (
            "New study: a study TOML file (the rest is then unused), or from Setup — model "
            f"{setup['model']}, k {setup['k']}, seed {setup['seed']}, calibration and eval fields — "
            "× the lists below (comma-separated)\n"
            f"objectives: {' '.join(known['objectives'])} · searchers, baselines: {' '.join(known['searchers'])}"
        )

        def go(values: dict | None) -> None:
            if values:
                self.start_study(values, setup)

        fields = [(name, label, initial[name]) for name, label in FIELDS]
        self.app.push_screen(FormModal(title, fields, lambda values: check(values, setup, runs_dir)), go)

    def start_study(self, values: dict, setup: dict) -> None:
        status = self.query_one("#status", Static)
        try:
            config, path = prepare(values, setup, self.app.runs_dir)
        except (UserError, OSError) as exc:  # the file changed, or cannot be written, since the check
            status.update(Text(f"✖ the study did not start: {field_message(str(exc))}"))
            return
        before = study_json_mtime(self.app.runs_dir, config.name)
        launched = self.app.start_child(study_argv(path, self.app.runs_dir), f"study {config.name}")
        self.pending = (launched, config.name, before)
        status.update(Text(f"starting study {config.name} from {path} (process {launched.pid}) ..."))

    def watch_launch(self) -> None:
        """While a study child starts: open its Study screen once it has (re)written study.json (after
        checking every cell), or show why it ended."""
        if self.pending is None:
            return
        launched, name, before = self.pending
        status = self.query_one("#status", Static)
        if study_json_mtime(self.app.runs_dir, name) not in (None, before) and launched.process.poll() in (None, 0):
            self.pending = None
            status.update("")
            self.reload()
            self.app.push_screen(StudyScreen(name))
            return
        failure = launched.failure()
        if failure is not None or launched.process.poll() == 0:
            self.pending = None
            why = field_message(failure or "it ended without writing study.json")
            status.update(Text(f"✖ the study did not start: {why}"))
