"""The one table of user actions: key bindings, the help screen and the command palette come from it.

An action's `id` ("live.stop") is also its name in the user's keymap (`[keys]` in config.toml); its
`scope` is the screen that binds it ("app" for everywhere). `action` is the Textual action string
run on that screen (or on the app for scope "app").
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    id: str
    key: str  # default keys, comma-separated
    action: str
    label: str  # short, for the footer
    description: str  # for help and the palette
    scope: str  # one of SCOPES
    show: bool = True  # in the footer


ACTIONS = (
    Action("app.help", "f1,question_mark", "help", "Help", "Help: every key", "app"),
    Action("app.setup", "f2", "open_setup", "Setup", "New run (Setup screen)", "app"),
    Action("app.runs", "f3", "open_runs", "Runs", "Runs in the runs directory", "app"),
    Action("app.studies", "f4", "open_studies", "Studies", "Studies: grid progress, tables, masks", "app"),
    Action(
        "app.palette", "ctrl+p", "command_palette", "Palette", "Command palette (also: change theme)", "app", show=False
    ),
    Action("app.quit", "ctrl+q", "quit", "Quit", "Quit; runs keep going in the background", "app"),
    Action("setup.start", "ctrl+s,f5", "start", "Start", "Start the run (Enter in a field too)", "setup"),
    Action("setup.reset", "ctrl+r", "reset", "Reset", "Reset the focused field to its default", "setup"),
    Action("setup.back", "escape", "back", "Back", "Back to the previous screen", "setup", show=False),
    Action("live.back", "escape,q", "back", "Back", "Back to the previous screen", "live"),
    Action("live.pause", "p", "toggle_pause", "Pause", "Pause / resume rendering", "live"),
    Action("live.stop", "x", "stop", "Stop", "Stop the run, in any phase (asks first)", "live"),
    Action("live.resume", "r", "resume", "Resume", "Resume a stopped or interrupted run", "live"),
    Action("live.detach", "d", "detach", "Detach", "Detach: quit, the run keeps going", "live", show=False),
    Action("live.log", "l", "toggle_log", "Log", "Show / hide the log drawer", "live"),
    Action("runs.back", "escape,q", "back", "Back", "Clear the filter, else back to the previous screen", "runs"),
    Action("runs.mark", "space", "mark", "Mark", "Mark / unmark a run for Compare", "runs"),
    Action("runs.open", "enter", "open", "Open", "Open a run (attach live, or replay)", "runs", show=False),
    Action("runs.compare", "c", "compare", "Compare", "Compare the marked runs", "runs"),
    Action("runs.resume", "r", "resume", "Resume", "Resume the stopped or interrupted run", "runs"),
    Action("runs.evaluate", "v", "evaluate", "Eval", "Evaluate the run's result on benchmarks", "runs"),
    Action("runs.export", "e", "export", "Export", "Export the run's pruned model", "runs"),
    Action("runs.heal", "h", "heal", "Heal", "Heal the run's pruned model (linear or LoRA)", "runs"),
    Action("runs.sort", "s", "sort", "Sort", "Sort by the next column", "runs", show=False),
    Action("runs.reverse", "S", "reverse", "Reverse", "Reverse the sort order", "runs", show=False),
    Action("runs.filter", "slash", "filter", "Filter", "Filter runs by text", "runs"),
    Action("runs.reload", "g", "reload", "Reload", "Reload the list", "runs", show=False),
    Action("compare.back", "escape,q", "back", "Back", "Back to the previous screen", "compare"),
    Action("compare.diff", "d", "toggle_differences", "Diff", "Differences only (hide equal rows)", "compare"),
    Action("compare.baseline", "b", "next_baseline", "Baseline", "Next baseline run for the deltas", "compare"),
    Action("compare.export_md", "e", "export('md')", "Export md", "Export Markdown to a file (and copy)", "compare"),
    Action("compare.export_csv", "E", "export('csv')", "Export csv", "Export CSV to a file (and copy)", "compare"),
    Action("studies.back", "escape,q", "back", "Back", "Back to the previous screen", "studies", show=False),
    Action("studies.open", "enter", "open", "Open", "Open the study (Study screen)", "studies", show=False),
    Action(
        "studies.new",
        "n",
        "new_study",
        "New study",
        "Start a study from a TOML file or the Setup fields",
        "studies",
    ),
    Action("study.back", "escape,q", "back", "Back", "Back to the list of studies", "study"),
    Action("study.open", "enter", "open", "Open cell", "Open the selected cell's run (Live screen)", "study"),
    Action("study.group", "n", "next_group(1)", "Group", "Next (model, k) group", "study"),
    Action("study.group_back", "N", "next_group(-1)", "Prev group", "Previous (model, k) group", "study", show=False),
    Action("study.objective", "o", "next_objective(1)", "Objective", "Next objective", "study"),
    Action(
        "study.objective_back", "O", "next_objective(-1)", "Prev objective", "Previous objective", "study", show=False
    ),
    Action("help.close", "escape,q", "dismiss", "Close", "Close help", "help"),
)

BY_ID = {a.id: a for a in ACTIONS}
SCOPES = ("app", "setup", "live", "runs", "compare", "studies", "study", "help")


def actions(scope: str) -> list[Action]:
    return [a for a in ACTIONS if a.scope == scope]


def bindings(scope: str) -> list[Binding]:
    """The BINDINGS of a screen (or of the app for "app"), with ids so a keymap can rebind them."""
    return [Binding(a.key, a.action, a.label, show=a.show, tooltip=a.description, id=a.id) for a in actions(scope)]


def keymap_problems(keymap: dict) -> list[str]:
    """Why entries of a user keymap cannot be used: unknown action ids, keys that are not text."""
    problems = [f"unknown action {key!r}" for key in keymap if key not in BY_ID]
    problems += [f"{key}: key must be a string" for key, value in keymap.items() if not isinstance(value, str)]
    return problems
