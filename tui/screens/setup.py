"""Setup: the form of a new run, validated as you type; Enter (or ctrl+s) starts it.

Validation runs in a checking process (`checker.py`: the engine's registries import torch, and
the model's block count is read from its config), started after the first paint, so neither the
paint, typing nor quitting waits for it; a daemon thread reads its answers and posts them as
`Checked` messages. Starting launches the search as a child process (`launch.py`) and opens the
Live screen as soon as its run directory exists (before the model loads); a child that fails first
shows its one-line error here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from ..actions import bindings
from ..launch import Launch
from ..setup_form import DEFAULTS, FIELDS, LABELS, field_message, prune_argv


@dataclass
class Checked(Message):
    """The validation of one set of form values."""

    values: dict
    errors: dict
    hints: dict
    blocks: int | None


@dataclass
class SetupValues(Message):
    """The Setup fields now (the app keeps the latest: a study started from Setup uses them)."""

    values: dict


class SetupScreen(Screen):
    SCOPE = "setup"
    BINDINGS = bindings("setup")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pending: Launch | None = None
        self.checked: Checked | None = None  # the latest validation (None: not yet)
        self.start_when_checked = False
        self.checker: subprocess.Popen | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("New run", "bold"), f"  runs dir: {self.app.runs_dir}"), id="title")
        initial = {**DEFAULTS, "data_dir": str(self.app.data_dir or "")}
        form = VerticalScroll(id="form", can_focus=False)
        with form:
            for field in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(field.label, classes="label")
                    yield Input(initial[field.name], id=field.name, compact=True)
                    yield Static(Text(field.hint), id=f"{field.name}-note", classes="note")
        yield Static("", id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        for widget in self.query(Input):
            widget.cursor_blink = False  # steady cursor: less traffic over SSH, deterministic screenshots
        self.set_interval(0.25, self.watch_launch)
        self.query_one(Input).focus()
        self.app.post_message(SetupValues(self.values()))
        # the first check imports the engine (torch): only once the form is on screen
        self.call_after_refresh(lambda: self.set_timer(0.3, self.start_checker))

    def values(self) -> dict[str, str]:
        return {field.name: self.query_one(f"#{field.name}", Input).value for field in FIELDS}

    def start_checker(self) -> None:
        self.checker = subprocess.Popen(
            [sys.executable, "-m", "depthprune.tui.checker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self.read_checks, args=(self.checker,), name="setup-check", daemon=True).start()
        self.check(self.values())

    def check(self, values: dict[str, str]) -> None:
        if self.checker is None:
            return  # not started yet: it checks the values it finds when it starts
        try:
            self.checker.stdin.write(json.dumps(values) + "\n")
        except (BrokenPipeError, ValueError):
            self.notify("the field checker ended; fields are checked when the run starts", severity="warning")

    def read_checks(self, checker: subprocess.Popen) -> None:
        for line in checker.stdout:
            answer = json.loads(line)
            self.post_message(Checked(answer["values"], answer["errors"], answer["hints"], answer["blocks"]))

    def on_unmount(self) -> None:
        if self.checker is not None:
            self.checker.kill()
            self.checker.wait()

    @on(Checked)
    def show_errors(self, checked: Checked) -> None:
        if checked.values != self.values():
            return  # a newer check is on its way
        self.checked = checked
        for field in FIELDS:
            note = self.query_one(f"#{field.name}-note", Static)
            hint = checked.hints.get(field.name, field.hint)
            if field.name == "model" and checked.blocks:
                hint = f"{checked.blocks} blocks · {hint}"
            note.update(Text(f"✖ {checked.errors[field.name]}" if field.name in checked.errors else hint))
            note.set_class(field.name in checked.errors, "error")
        if self.start_when_checked:
            self.start_when_checked = False
            self.action_start()

    @on(Input.Changed)
    def changed(self) -> None:
        self.checked = None
        self.check(self.values())
        self.app.post_message(SetupValues(self.values()))

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_start()

    def action_reset(self) -> None:
        """The focused field back to its default, its text selected (typing replaces it)."""
        field = self.focused if isinstance(self.focused, Input) else self.query_one(Input)
        field.value = DEFAULTS[field.id] if field.id != "data_dir" else str(self.app.data_dir or "")
        field.select_all()

    def action_back(self) -> None:
        self.app.back_from_mode()

    def action_start(self) -> None:
        if self.pending is not None:
            self.notify("a run is already starting", severity="warning")
            return
        status = self.query_one("#status", Static)
        if self.checked is None:  # the check of the current values is still running: start when it is done
            self.start_when_checked = True
            status.update("checking the fields ...")
            return
        errors = self.checked.errors
        if errors:
            status.update(Text(f"✖ fix before starting: {', '.join(LABELS[n] for n in errors)}"))
            first = next(f.name for f in FIELDS if f.name in errors)
            self.query_one(f"#{first}", Input).focus()
            return
        self.pending = self.app.start_child(prune_argv(self.values(), self.app.runs_dir), "search")
        status.update(f"starting (process {self.pending.pid}) ...")

    def watch_launch(self) -> None:
        """While a child starts: open Live on its run once it exists, or show why it ended."""
        if self.pending is None:
            return
        run = self.pending.run()
        status = self.query_one("#status", Static)
        if run is not None:
            self.pending.run_id = run.id
            self.pending = None
            status.update("")
            self.app.open_live(run)
            return
        failure = self.pending.failure()
        if failure is not None or self.pending.process.poll() == 0:
            self.pending = None
            why = field_message(failure or "it ended without a run directory")
            status.update(Text(f"✖ the run did not start: {why}"))
