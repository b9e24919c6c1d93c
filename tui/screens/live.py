"""Live run: phase and progress, importance bars, the best-so-far curve, for a run whose candidates
carry terms (a mix) the scatter of its Pareto front, evaluated configurations, the machine strip and
a log drawer, for a run being written, attached to, or replayed — all from its run directory.

A thread worker follows the run (`follow.py`) and posts `RunUpdate` messages; the screen folds
them into the view model and redraws at most `FPS` times a second, unless rendering is paused.
Elapsed time comes from the app's clock, so tests can freeze it.
"""

from __future__ import annotations

import signal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, Sparkline, Static
from textual.worker import get_current_worker

from ...core.runs import Run
from ..actions import bindings
from ..follow import RunFollower, RunUpdate
from ..launch import resume_argv, stop
from ..machine import size, strip_text
from ..viewmodel import SEARCHER, RunView, primary_metric, summary_fields
from ..widgets.bars import ImportanceBars
from ..widgets.scatter import CHOSEN, DENSE, FRONT, FrontScatter, axis_range
from ..widgets.table import RowTable
from .confirm import Confirm

FPS = 15
TICK = 0.25  # seconds between redraws while a process writes the run (elapsed time, the spinner)
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # one frame per TICK beside the phase while a process works
STOPPED_EXIT = 130  # `depthprune prune`'s exit status when it was stopped
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


def heal_lines(view: RunView) -> list[Text]:
    """Per heal method of the run: how long it took and where the checkpoint is, then each held-out
    task's metric before (pruned) -> after (healed) with the change."""
    lines = []
    for method, healed in view.heals.items():
        where = f" → {healed.out}" if healed.out else " (scored by a study, no checkpoint kept)"
        lines.append(Text.assemble(("healed", "bold"), f" {method} in {healed.seconds:.1f} s{where}"))
        for task, after in healed.after.items():
            name, value = primary_metric(after)
            before = healed.before.get(task, {}).get(name)
            change = "" if before is None else f"{before:.4g} → "
            delta = "" if before is None else f" ({value - before:+.3g})"
            lines.append(Text(f"  {task} {name} {change}{value:.4g}{delta}"))
    return lines


def stop_question(run_id: str, phase: str | None, outcome: str | None) -> tuple[str, int]:
    """(what stopping does now, the signal that does it), by the run's phase: the search stops between
    two candidates on SIGTERM (before the first one while the model loads); benchmarks after the
    search only end on SIGINT, and their scores are then not recorded."""
    if phase == "healing":
        return (
            f"Stop run {run_id}?\nThe search is over and stored; this ends the heal now (no checkpoint is "
            f"written; a LoRA heal continues from its last saved step with depthprune heal --run {run_id} "
            f"--method lora --resume).",
            signal.SIGINT,
        )
    if phase == "benchmarking" or outcome == "finished":
        return (
            f"Stop run {run_id}?\nThe search is over and stored; this ends the benchmark evaluation now "
            f"(its scores are not recorded; evaluate again from Runs with v).",
            signal.SIGINT,
        )
    if phase in (None, "loading", "calibrating", "signals"):
        return (
            f"Stop run {run_id}?\nIt stops once the model is loaded and calibrated, before the first "
            f"candidate; resume it later with r.",
            signal.SIGTERM,
        )
    return f"Stop run {run_id}?\nIt stops after the current candidate; resume it later with r.", signal.SIGTERM


class LiveScreen(Screen):
    SCOPE = "live"
    BINDINGS = bindings("live")

    def __init__(self, run: Run, **kwargs):
        super().__init__(**kwargs)
        self.run = run
        self.view = RunView(run.config)
        self.follower = RunFollower(run)
        self.writer_pid = run.writer_pid()
        self.proc = None
        self.result: dict | None = run.result()
        self.paused = False
        self.dirty = True
        self.logged = 0
        self.problems: list[str] = []
        self.problems_logged = 0

    @property
    def writer_alive(self) -> bool:
        return self.writer_pid is not None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="machine")
        with Horizontal(id="panes"):
            with Vertical(id="bars-pane"):
                yield Static(id="bars-title", classes="pane-title")
                yield ImportanceBars(id="bars")
            with Vertical(id="right"):
                yield Static(id="progress")
                yield Static(id="curve-title", classes="pane-title")
                yield Sparkline([], id="curve")
                yield Static(id="front-title", classes="pane-title")
                yield FrontScatter(id="front")
                yield Static(id="heal-title", classes="pane-title")
                yield Sparkline([], id="heal-curve")
                yield RowTable(id="configs", cursor_type="row", zebra_stripes=True, header_height=2)
        log = Log(id="log", max_lines=2000)
        log.display = False
        yield log
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        update = self.follower.poll(force=True)  # the first paint shows what is already on disk
        if update is not None:
            self.apply(update)
        self.frame()
        self.set_interval(1 / FPS, self.frame)
        self.set_interval(TICK, self.tick)
        self.follow()
        self.query_one("#bars").focus()

    @work(thread=True, exclusive=True, group="follow")
    def follow(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            update = self.follower.poll()
            if update is not None:
                self.post_message(update)
            worker.cancelled_event.wait(1 / FPS)

    @on(RunUpdate)
    def apply(self, update: RunUpdate) -> None:
        if update.config is not None:
            self.run.config = self.view.config = update.config
            self.view.k = update.config.get("k") or self.view.k
        self.view.fold(update.events)
        self.problems += update.problems
        if (update.writer_pid is None) != (self.writer_pid is None):
            self.refresh_bindings()
        self.writer_pid, self.proc = update.writer_pid, update.proc
        if update.result is not None:
            self.result = update.result
        self.dirty = True

    def tick(self) -> None:
        """Redraw while a process writes the run, even between its events (a model can load for minutes)."""
        if self.writer_alive:
            self.dirty = True

    def frame(self) -> None:
        if self.dirty and not self.paused:
            self.dirty = False
            with self.app.batch_update():
                self.render_view()

    def failure(self) -> str | None:
        """The last error line of the latest child started from this app for this run, once it failed."""
        latest = next((launched for launched in reversed(self.app.launches) if launched.run_id == self.run.id), None)
        if latest is None or latest.process.poll() == STOPPED_EXIT:  # a stopped search is not a failure
            return None
        return latest.failure()

    @property
    def state(self) -> str:
        if not self.writer_alive and self.failure() is not None:
            return "failed"
        return self.view.state(self.writer_alive)

    def render_view(self) -> None:
        view = self.view
        title = Text.assemble(
            (self.run.id, "bold"),
            "  ",
            str(view.config.get("model")),
            " · ",
            str(view.config.get("searcher")),
            f" k={view.k} · ",
            view.objective,
            " · ",
            (self.state.upper(), "bold"),
        )
        phase = view.phase_text(self.writer_alive)
        if phase:
            title.append(f" · {SPINNER[int(self.app.clock() / TICK) % len(SPINNER)]} {phase}")
        if self.paused:
            title.append("  PAUSED (p resumes)", "reverse")
        self.query_one("#title", Static).update(title)
        self.query_one("#machine", Static).update(
            Text(strip_text(view.config, view.usage, self.proc, view.peak_rss, view.peak_gpu))
        )
        if view.importance_scale == SEARCHER:
            scale = view.importance_label
        elif view.importance_scale is None:
            scale = "none yet"
        else:
            scale = f"{view.objective}, block alone"
        self.query_one("#bars-title", Static).update(Text(f"Importance ({scale})"))
        self.query_one(ImportanceBars).show(view.n_blocks, view.importance, view.removed)
        self.render_progress()
        self.render_table()
        log = self.query_one(Log)
        log.write_lines(view.log[self.logged :] + self.problems[self.problems_logged :])
        self.logged, self.problems_logged = len(view.log), len(self.problems)

    def render_progress(self) -> None:
        view = self.view
        now = self.app.clock()
        done, planned = view.progress()
        if planned is None:
            count = f"candidates {done} / planned unknown"
        else:
            count = f"candidates {done}/{planned}" + (f" ({100 * done / planned:.0f}%)" if planned else "")
        eta = view.eta_seconds(now, self.writer_alive)
        timing = f"elapsed {duration(view.elapsed(now, self.writer_alive))}"
        timing += f" · ETA {duration(eta)}" if self.writer_alive else " · ended"
        failure = self.failure() if not self.writer_alive else None
        lines = [Text(f"✖ the process failed: {failure}", style="bold")] if failure else []
        lines += [Text(count), Text(f"memo hits {view.memo_hits} · early aborts {view.aborted}"), Text(timing)]
        if view.best is not None:
            lines.append(
                Text.assemble(("best", "bold"), f" {view.best.value:.5g} · removed {blocks(view.best.removed)}")
            )
        elif view.partial is not None:
            p = view.partial
            lines.append(
                Text(f"best partial ({len(p.removed)} of {view.k}) {p.value:.5g} · removed {blocks(p.removed)}")
            )
        else:
            lines.append(Text("best: none yet"))
        if view.current is not None:
            lines.append(Text(f"candidate {blocks(view.current)} · {view.status}"))
        cache = (self.result or {}).get("prefix_cache")
        if cache:
            lines.append(
                Text(
                    "prefix cache "
                    + " · ".join(
                        f"{k} {size(v) if k == 'bytes' else v}" for k, v in cache.items() if isinstance(v, (int, float))
                    )
                )
            )
        for event in {e.kind: e for e in view.others}.values():
            lines.append(Text(f"{event.kind}: " + ", ".join(f"{k}={v}" for k, v in summary_fields(event).items())))
        lines += heal_lines(view)
        self.query_one("#progress", Static).update(Text("\n").join(lines))
        curve = view.best_curve
        self.query_one("#curve-title", Static).update(
            Text(f"best k-set so far over {len(curve)} candidates" if curve else "best k-set so far: none yet")
        )
        sparkline = self.query_one("#curve", Sparkline)
        sparkline.display = bool(curve)
        sparkline.data = list(curve)  # a new list: the reactive ignores the same object
        self.render_front()
        losses = view.heal_curve
        heal_title = self.query_one("#heal-title", Static)
        heal_title.display = bool(losses)
        heal_title.update(Text(f"heal loss over {len(losses)} steps · last {losses[-1]:.4f}" if losses else ""))
        heal_curve = self.query_one("#heal-curve", Sparkline)
        heal_curve.display = bool(losses)
        heal_curve.data = losses

    def render_front(self) -> None:
        """The front scatter of the first two terms, shown once candidates carry two or more."""
        view = self.view
        title, scatter = self.query_one("#front-title", Static), self.query_one(FrontScatter)
        title.display = scatter.display = len(view.term_names) >= 2 and bool(view.terms)
        if not scatter.display:
            return
        x, y = view.term_names[:2]
        on_front = set(view.front)
        cloud = [p[:2] for s, p in view.terms.items() if s not in on_front]
        front = [view.terms[s][:2] for s in view.front]
        chosen = view.terms.get(view.removed)
        shown = cloud + front
        (x0, x1), (y0, y1) = axis_range([p[0] for p in shown]), axis_range([p[1] for p in shown])
        title.update(
            Text.assemble(
                ("Pareto front", "bold"),
                f" {len(front)}/{len(view.terms)} · {FRONT}front {CHOSEN}best {DENSE}dense\n",
                f"x {x} {x0:.2g}…{x1:.2g} · y {y} {y0:.2g}…{y1:.2g}",
            )
        )
        scatter.show(cloud, front, chosen[:2] if chosen else None)

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
            cells = [
                blocks(config.removed) if config.removed else "dense",
                "—" if config.value is None else f"{config.value:.5g}",
            ]
            for task, metric in tasks:
                value = config.tasks.get(task, {}).get(metric)
                cells.append("—" if value is None else f"{value:.4g}")
            table.add_row(*(Text(c) for c in cells))

    def check_action(self, action: str, parameters) -> bool | None:
        """Stop is offered while a process writes the run, resume once none does (footer and keys)."""
        if action == "stop":
            return self.state == "running"
        if action == "resume":
            return self.state in ("stopped", "incomplete", "failed")
        return True

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.dirty = True
        self.render_view()

    def action_toggle_log(self) -> None:
        log = self.query_one(Log)
        log.display = not log.display

    def action_stop(self) -> None:
        if self.state != "running":
            self.notify(f"run is {self.state}, nothing to stop")
            return
        phase = self.view.phase.phase if self.view.phase else None
        question, sig = stop_question(self.run.id, phase, self.view.outcome)

        def answered(yes: bool | None) -> None:
            if yes:
                pid = stop(self.run, sig)
                self.notify(f"signal sent to process {pid}" if pid else "the run already ended")

        self.app.push_screen(Confirm(question), answered)

    def action_resume(self) -> None:
        if self.state not in ("stopped", "incomplete", "failed") or not (self.run.path / "run.json").is_file():
            self.notify(f"run is {self.state}; only a stopped or interrupted run resumes")
            return
        self.app.start_child(resume_argv(self.run, self.app.runs_dir), f"resume {self.run.id}", self.run.id)
        self.notify(f"resuming {self.run.id}")

    def action_detach(self) -> None:
        self.app.leave()

    def action_back(self) -> None:
        self.app.pop_screen()
