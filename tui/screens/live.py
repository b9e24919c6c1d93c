"""Live run: importance bars, search progress with the best-so-far curve, evaluated configurations
and a log drawer, for a run being written, attached to, or replayed — all from its events.jsonl.

One timer at `FPS` drains every new event, folds them into the view model and redraws only when
something changed (and rendering is not paused); a slower one checks whether a process still
writes the run. Elapsed time comes from the app's clock, so tests can freeze it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, Sparkline, Static

from ...core.runs import Run
from ..actions import bindings
from ..launch import stop
from ..tail import EventTail
from ..viewmodel import RunView
from ..widgets.bars import ImportanceBars
from .confirm import Confirm

FPS = 15
TOP = 12  # configurations in the table


def duration(seconds: float | None) -> str:
    """h:mm:ss (m:ss under an hour); "?" when unknown."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def blocks(removed) -> str:
    return " ".join(map(str, removed)) if removed else "none"


class LiveScreen(Screen):
    SCOPE = "live"
    BINDINGS = bindings("live")

    def __init__(self, run: Run, **kwargs):
        super().__init__(**kwargs)
        self.run = run
        self.view = RunView(run.config)
        self.tail = EventTail(run.path / "events.jsonl")
        self.writer_alive = run.writer_pid() is not None
        self.paused = False
        self.dirty = True
        self.logged = 0
        self.problems_logged = 0

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with Horizontal(id="panes"):
            with Vertical(id="bars-pane"):
                yield Static(id="bars-title", classes="pane-title")
                yield ImportanceBars(id="bars")
            with Vertical(id="right"):
                yield Static(id="progress")
                yield Static(id="curve-title", classes="pane-title")
                yield Sparkline([], id="curve")
                yield DataTable(id="configs", cursor_type="row", zebra_stripes=True, header_height=2)
        log = Log(id="log", max_lines=2000)
        log.display = False
        yield log
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.set_interval(1 / FPS, self.frame)
        self.set_interval(1.0, self.check_writer)
        self.frame()
        self.query_one("#bars").focus()

    def check_writer(self) -> None:
        alive = self.run.writer_pid() is not None
        self.dirty = self.dirty or alive != self.writer_alive or (alive and self.view.outcome is None)
        self.writer_alive = alive

    def frame(self) -> None:
        """Drain new events, fold them, and redraw if anything changed."""
        if self.view.fold(self.tail.read()):
            self.dirty = True
        if self.dirty and not self.paused:
            self.dirty = False
            with self.app.batch_update():
                self.render_view()

    @property
    def state(self) -> str:
        return self.view.state(self.writer_alive)

    def render_view(self) -> None:
        view = self.view
        paused = "  [reverse] PAUSED [/reverse]" if self.paused else ""
        self.query_one("#title", Static).update(
            f"[b]{self.run.id}[/b]  {view.config.get('model')} · {view.config.get('searcher')} k={view.k} · "
            f"{view.objective} · [b]{self.state.upper()}[/b]{paused}")
        source = "searcher" if view.searcher_importance else f"{view.objective}, alone"
        self.query_one("#bars-title", Static).update(f"Importance ({source})")
        self.query_one(ImportanceBars).show(view.n_blocks, view.importance, view.removed)
        self.render_progress()
        self.render_table()
        log = self.query_one(Log)
        log.write_lines(view.log[self.logged:] + self.tail.problems[self.problems_logged:])
        self.logged, self.problems_logged = len(view.log), len(self.tail.problems)

    def render_progress(self) -> None:
        view = self.view
        planned = "?" if view.planned is None else str(view.planned)
        percent = f" ({100 * view.done / view.planned:.0f}%)" if view.planned else ""
        best = view.best
        lines = [f"evaluations [b]{view.done}[/b]/{planned}{percent}",
                 (f"elapsed {duration(view.elapsed(self.app.clock()))} · "
                  f"{'ended' if view.outcome else 'ETA ' + duration(view.eta_seconds())}"),
                 f"[$best-score]best[/] {best.value:.5g} · removed {blocks(best.removed)}" if best else "best: none yet",
                 f"[$candidate]candidate[/] {blocks(view.current)} · {view.status}" if view.current is not None
                 else "candidate: none yet",
                 f"cache hits {view.cached} · early aborts {view.aborted}"]
        self.query_one("#progress", Static).update("\n".join(lines))
        self.query_one("#curve-title", Static).update(f"best so far over {len(view.best_curve)} evaluations")
        self.query_one(Sparkline).data = view.best_curve

    def render_table(self) -> None:
        table = self.query_one("#configs", DataTable)
        tasks = self.view.task_columns()
        columns = ["removed", f"{self.view.objective}\nobjective"] + [f"{task}\n{metric}" for task, metric in tasks]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        else:
            table.clear()
        for config in self.view.top(TOP):
            cells = [blocks(config.removed), "—" if config.value is None else f"{config.value:.5g}"]
            for task, metric in tasks:
                value = config.tasks.get(task, {}).get(metric)
                cells.append("—" if value is None else f"{value:.4g}")
            table.add_row(*cells)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.dirty = True
        if self.paused:
            self.render_view()

    def action_toggle_log(self) -> None:
        log = self.query_one(Log)
        log.display = not log.display

    def action_stop(self) -> None:
        if self.state != "running":
            self.notify(f"run is {self.state}, nothing to stop")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                pid = stop(self.run)
                self.notify(f"stopping process {pid} after the current candidate" if pid else "the run already ended")

        self.app.push_screen(Confirm(f"Stop run {self.run.id}?\nIt stops after the current candidate and can be "
                                     f"resumed with depthprune prune --resume."), answered)

    def action_detach(self) -> None:
        self.app.leave()

    def action_back(self) -> None:
        self.app.pop_screen()
