"""Setup: the form of a new run, validated as you type; Enter (or ctrl+s) starts it.

Starting launches the search as a child process (`launch.py`) and waits for its run directory,
then opens the Live screen on it; a child that fails first shows its one-line error here.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Input, Label, Static

from ..actions import bindings
from ..launch import Launch, launch
from ..setup_form import DEFAULTS, FIELDS, prune_argv, validate


class SetupScreen(Screen):
    SCOPE = "setup"
    BINDINGS = bindings("setup")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pending: Launch | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"[b]New run[/b]  runs dir: {self.app.runs_dir}", id="title", markup=True)
        initial = {**DEFAULTS, "data_dir": str(self.app.data_dir or "")}
        with VerticalScroll(id="form"):
            for field in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(field.label, classes="label")
                    yield Input(initial[field.name], id=field.name, compact=True,
                                suggester=SuggestFromList(field.choices) if field.choices else None)
                    yield Static(field.hint, id=f"{field.name}-note", classes="note")
        yield Static("", id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        for widget in self.query(Input):
            widget.cursor_blink = False  # steady cursor: less traffic over SSH, deterministic screenshots
        self.set_interval(0.25, self.watch_launch)
        self.query_one(Input).focus()

    def values(self) -> dict[str, str]:
        return {field.name: self.query_one(f"#{field.name}", Input).value for field in FIELDS}

    def show_errors(self) -> dict[str, str]:
        errors = validate(self.values())
        for field in FIELDS:
            note = self.query_one(f"#{field.name}-note", Static)
            note.update(f"✖ {errors[field.name]}" if field.name in errors else field.hint)
            note.set_class(field.name in errors, "error")
        return errors

    @on(Input.Changed)
    def changed(self) -> None:
        self.show_errors()

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_start()

    def action_reset(self) -> None:
        for field in FIELDS:
            self.query_one(f"#{field.name}", Input).value = DEFAULTS[field.name]

    def action_start(self) -> None:
        if self.pending is not None:
            self.notify("a run is already starting", severity="warning")
            return
        errors = self.show_errors()
        status = self.query_one("#status", Static)
        if errors:
            status.update(f"✖ {len(errors)} field(s) to fix before starting")
            return
        self.pending = launch(prune_argv(self.values(), self.app.runs_dir), self.app.runs_dir)
        self.app.launches.append(self.pending)
        status.update(f"starting (process {self.pending.pid}): loading the model ...")

    def watch_launch(self) -> None:
        """While a child starts: open Live on its run once it exists, or show why it ended."""
        if self.pending is None:
            return
        run = self.pending.run()
        status = self.query_one("#status", Static)
        if run is not None:
            self.pending = None
            status.update("")
            self.app.open_live(run)
            return
        failure = self.pending.failure()
        if failure is not None or self.pending.process.poll() == 0:
            self.pending = None
            status.update(f"✖ the run did not start: {failure or 'it ended without a run directory'}")
