"""Runs: every run in the runs directory, sortable and filterable; mark runs for Compare; resume,
evaluate and export a run (child processes, shown with their progress in the jobs pane).

Rows come from `runs_index.RunsIndex` (`core.tables.run_row`'s fields plus state, progress, start time
and benchmark average), read in a worker every `RELOAD_SECONDS` while the screen is shown.
Every cell is plain text: a model called `x:llama:` or a name with `[...]` shows literally.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ...core.errors import UserError
from ...core.runs import Run
from ..actions import bindings
from ..comparison import REMOVED_GLYPH
from ..launch import eval_argv, export_argv, heal_argv, resume_argv
from ..runs_index import RunsIndex
from ..screens.live import blocks
from ..widgets.table import RowTable
from .form import FormModal

COLUMNS = (
    "state",
    "progress",
    "model",
    "objective",
    "searcher",
    "k",
    "value",
    "removed",
    "cands",
    "seconds",
    "bench",
    "started",
    "run",
)  # the long id last
NARROW = ("state", "progress", "k", "value", "bench", "removed", "run")  # under WIDE columns of terminal
WIDE = 150
RELOAD_SECONDS = 2.0
MARK = "●"
JOBS_SHOWN = 3


def cell(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, list):
        return blocks(value)
    return str(value)


def sort_key(value):
    """Numbers before text, missing values last."""
    return (
        value is None,
        not isinstance(value, (int, float)),
        value if isinstance(value, (int, float)) else str(value),
    )


def check_tasks_and_counts(values: dict, minimums: dict[str, int]) -> dict[str, str]:
    """Errors of the fields `tasks` (known benchmark names, at least one) and of the integer fields
    named in `minimums` (empty, or an integer at least its minimum)."""
    from ...core.parsing import parse_list
    from ...core.tasks import get_task

    errors = {}
    tasks = parse_list(values["tasks"])
    if not tasks:
        errors["tasks"] = "at least one task"
    for task in tasks:
        try:
            get_task(task, "tasks")
        except UserError as exc:
            errors["tasks"] = str(exc)
    for name, minimum in minimums.items():
        text = values[name].strip()
        if text and (not text.isdigit() or int(text) < minimum):
            errors[name] = f"{text!r} is not an integer ≥ {minimum}"
    return errors


def check_eval(values: dict) -> dict[str, str]:
    return check_tasks_and_counts(values, {"limit": 1, "seq_len": 2})


def check_heal(run: Run, values: dict) -> dict[str, str]:
    """The heal form: a known method whose output directory <run>/healed-<method> is free, then the
    evaluation fields (held-out tasks scored before and after) and the LoRA steps."""
    from ...heal import METHODS

    errors = check_tasks_and_counts(values, {"limit": 1, "steps": 1})
    method = values["method"].strip()
    out = run.path / f"healed-{method}"
    if method not in METHODS:
        errors["method"] = f"{method!r} is not one of {', '.join(METHODS)}"
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        errors["method"] = f"{str(out)!r} exists and is not empty (healed with {method} already)"
    return errors


@dataclass
class RunsLoaded(Message):
    rows: list[dict]
    runs: dict[str, Run]


class RunsScreen(Screen):
    SCOPE = "runs"
    BINDINGS = bindings("runs")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[dict] = []
        self.runs: dict[str, Run] = {}
        self.index: RunsIndex | None = None
        self.marked: list[str] = []  # in marking order: the first is Compare's initial baseline
        self.sort_column = COLUMNS.index("run")  # ids start with the start time: oldest first
        self.reverse = False

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        filter_input = Input(placeholder="/ filter: any text in the row", id="filter", compact=True)
        filter_input.cursor_blink = False
        yield filter_input
        yield RowTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="jobs")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.index = RunsIndex(self.app.runs_dir)
        self.apply_rows(*self.index.rows())  # the first paint has the rows
        self.set_interval(RELOAD_SECONDS, self.reload)
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        self.refill()

    def shown_columns(self) -> tuple[str, ...]:
        return COLUMNS if self.size.width >= WIDE else NARROW

    @work(thread=True, exclusive=True, group="runs")
    def reload(self) -> None:
        self.post_message(RunsLoaded(*self.index.rows()))

    @on(RunsLoaded)
    def loaded(self, message: RunsLoaded) -> None:
        self.apply_rows(message.rows, message.runs)

    def apply_rows(self, rows: list[dict], runs: dict[str, Run]) -> None:
        if rows != self.rows:
            self.rows, self.runs = rows, runs
            self.marked = [m for m in self.marked if m in self.runs]
            self.refill()
        self.show_jobs()

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
            table.add_row(
                MARK if row["run"] in self.marked else " ", *(Text(cell(row[c])) for c in columns), key=row["run"]
            )
        ids = [row["run"] for row in rows]
        if current in ids:
            table.move_cursor(row=ids.index(current))
        arrow = "▼" if self.reverse else "▲"
        shown = f"{len(rows)} of {len(self.rows)} runs" if len(rows) != len(self.rows) else f"{len(self.rows)} runs"
        self.query_one("#title", Static).update(
            Text.assemble(
                ("Runs", "bold"),
                f" in {self.app.runs_dir} · {shown} · {len(self.marked)} marked · "
                f"sorted by {COLUMNS[self.sort_column]} {arrow} · {REMOVED_GLYPH} removed",
            )
        )

    def show_jobs(self) -> None:
        """The children started from the UI (searches, resumes, evaluations, exports), newest last."""
        jobs = self.query_one("#jobs", Static)
        launched = self.app.launches[-JOBS_SHOWN:]
        jobs.display = bool(launched)
        lines = []
        for job in launched:
            status = job.status()
            row = next((r for r in self.rows if r["run"] == job.run_id), None)
            if status == "running":
                detail = (row or {}).get("progress") or "starting"
            elif status == "done" and job.label.startswith("evaluate") and row and row["bench"] is not None:
                detail = f"benchmarked: mean accuracy {row['bench']:.4g} (bench column)"
            elif status == "done" and job.label.startswith("export"):
                detail = f"written and verified: {job.process.args[job.process.args.index('--out') + 1]}"
            else:
                detail = job.last_line()
            lines.append(f"{job.label or 'search'} · pid {job.pid} · {status} · {detail}"[:300])
        jobs.update(Text("Jobs\n" + "\n".join(lines)))

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current_run(self) -> Run | None:
        run_id = self.current_id()
        return self.runs.get(run_id) if run_id else None

    def current_row(self) -> dict | None:
        run_id = self.current_id()
        return next((r for r in self.rows if r["run"] == run_id), None)

    @on(Input.Changed, "#filter")
    def filtered(self) -> None:
        self.refill()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_back(self) -> None:
        """Escape: clear the filter first (and leave it), else back to the previous screen."""
        field = self.query_one("#filter", Input)
        if field.value or field.has_focus:
            field.value = ""
            self.query_one(DataTable).focus()
            return
        self.app.back_from_mode()

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
        run = self.current_run()
        if run is not None:
            self.app.open_live(run)

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark at least two runs (space) to compare", severity="warning")
            return
        self.app.open_compare([self.runs[m] for m in self.marked])

    def action_resume(self) -> None:
        run, row = self.current_run(), self.current_row()
        if run is None:
            return
        if row["state"] not in ("stopped", "incomplete"):
            self.notify(f"run is {row['state']}; only a stopped or interrupted run resumes", severity="warning")
            return
        self.app.start_child(resume_argv(run, self.app.runs_dir), f"resume {run.id}", run.id)
        self.app.open_live(run)

    def _finished(self) -> Run | None:
        run, row = self.current_run(), self.current_row()
        if run is None:
            return None
        if row["state"] == "running" or run.result() is None:
            self.notify(
                f"run is {row['state']}: it needs a finished search (and no process writing it)", severity="warning"
            )
            return None
        return run

    def action_evaluate(self) -> None:
        run = self._finished()
        if run is None:
            return
        stored = run.config.get("config") or {}
        fields = [
            ("tasks", "Tasks", ",".join(stored.get("eval_tasks") or []) or "demo-text,demo-mc"),
            ("limit", "Limit (items)", str(stored.get("eval_limit") or "")),
            ("seq_len", "Seq len", str(stored.get("eval_seq_len") or 512)),
            ("data_dir", "Data dir", str(self.app.data_dir or stored.get("data_dir") or "")),
        ]

        def go(values: dict | None) -> None:
            if values:
                argv = eval_argv(
                    run, self.app.runs_dir, values["tasks"], values["limit"], values["seq_len"], values["data_dir"]
                )
                self.app.start_child(argv, f"evaluate {run.id}", run.id)
                self.show_jobs()

        self.app.push_screen(FormModal(f"Evaluate {run.id}", fields, check_eval), go)

    def action_export(self) -> None:
        run = self._finished()
        if run is None:
            return
        default = str(self.app.runs_dir / "exports" / run.id)

        def check(values: dict) -> dict[str, str]:
            from pathlib import Path

            out = Path(values["out"].strip()).expanduser()
            if not values["out"].strip():
                return {"out": "a directory is required"}
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                return {"out": f"{str(out)!r} exists and is not empty"}
            return {}

        def go(values: dict | None) -> None:
            if values:
                self.app.start_child(
                    export_argv(run, self.app.runs_dir, values["out"].strip()), f"export {run.id}", run.id
                )
                self.show_jobs()

        self.app.push_screen(FormModal(f"Export {run.id}", [("out", "Output dir", default)], check), go)

    def action_heal(self) -> None:
        run = self._finished()
        if run is None:
            return
        stored = run.config.get("config") or {}
        fields = [
            ("method", "Method", "linear"),
            ("steps", "LoRA steps", "200"),
            ("tasks", "Held-out tasks", ",".join(stored.get("eval_tasks") or []) or "demo-text"),
            ("limit", "Limit (items)", str(stored.get("eval_limit") or "")),
            ("data_dir", "Data dir", str(self.app.data_dir or stored.get("data_dir") or "")),
        ]

        def go(values: dict | None) -> None:
            if values:
                self.app.start_child(heal_argv(run, self.app.runs_dir, values), f"heal {run.id}", run.id)
                self.show_jobs()

        self.app.push_screen(FormModal(f"Heal {run.id}", fields, lambda values: check_heal(run, values)), go)
