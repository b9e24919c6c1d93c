"""A small modal form: labelled inputs, checked by a function as you type; Enter submits, Escape cancels.

`check(values)` returns {field name: why the value is bad}; the form submits only without errors
and dismisses with the values (None when cancelled).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class FormModal(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[tuple[str, str, str]], check: Callable[[dict], dict[str, str]]):
        """`fields`: (name, label, initial value)."""
        super().__init__()
        self.title_text, self.fields, self.check = title, fields, check

    def compose(self) -> ComposeResult:
        with Vertical(id="form-modal"):
            yield Static(Text(self.title_text, style="bold"))
            for name, label, initial in self.fields:
                with Horizontal(classes="field"):
                    yield Label(label, classes="label")
                    field = Input(initial, id=f"f-{name}", compact=True)
                    field.cursor_blink = False
                    yield field
            yield Static("", id="form-errors", classes="note error")
            yield Static("enter: go · escape: cancel", classes="note")

    def values(self) -> dict[str, str]:
        return {name: self.query_one(f"#f-{name}", Input).value for name, _label, _initial in self.fields}

    @on(Input.Changed)
    def changed(self) -> None:
        errors = self.check(self.values())
        self.query_one("#form-errors", Static).update(Text("\n".join(f"✖ {n}: {e}" for n, e in errors.items())))

    @on(Input.Submitted)
    def submitted(self) -> None:
        values = self.values()
        if not self.check(values):
            self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)
