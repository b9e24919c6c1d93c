"""Help: every action of the registry with its current keys, grouped by screen."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

from ..actions import SCOPES, actions, bindings

TITLES = {
    "app": "Everywhere",
    "setup": "Setup",
    "live": "Live run",
    "runs": "Runs",
    "compare": "Compare",
    "studies": "Studies",
    "study": "Study",
    "help": "Help",
}


def help_table(keys: dict[str, str]) -> Table:
    """The registry as a table; `keys` maps action ids to their keys when remapped."""
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    table.add_column(style="dim", no_wrap=True)
    for scope in SCOPES:
        table.add_row(f"[u]{TITLES[scope]}[/u]", "", "")
        for action in actions(scope):
            shown = " ".join(format_key(key) for key in keys.get(action.id, action.key).split(","))
            table.add_row(shown, action.description, action.id)
    table.add_row("", "", "")
    table.add_row("Keymap", escape('config.toml, table [keys]: id = "keys"'), "")
    return table


class HelpScreen(ModalScreen):
    SCOPE = "help"
    BINDINGS = bindings("help")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_table(self.app.keys), id="help-table")
