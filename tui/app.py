"""`depthprune-tui`: the Textual application and its command line.

Three modes — Setup (the default), Runs and Studies — with the Live, Compare, Study and Help screens
pushed on top.
Searches run in child processes (`launch.py`); the app only reads their run directories, so
quitting is instant and leaves them running (the exit message says how to reattach).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import App

from ..core.errors import UserError
from ..core.runs import Run
from .actions import ACTIONS, bindings
from .config import Settings, default_config_dir, load_settings, save_theme
from .launch import Launch, launch
from .palette import ActionCommands
from .screens.compare import CompareScreen
from .screens.help import HelpScreen
from .screens.live import LiveScreen
from .screens.runs import RunsScreen
from .screens.setup import SetupScreen, SetupValues
from .setup_form import DEFAULTS
from .themes import DEFAULT_THEME, load_themes, theme_files, variable_defaults

TERMINAL_CHECK_SECONDS = 2.0


STUDIES_MODULE = f"{__package__}.screens.studies"  # imported on first use: the study analyses import scipy, torch


def studies_screen():
    """The Studies screen, imported on first use (see `STUDIES_MODULE`)."""
    from .screens.studies import StudiesScreen

    return StudiesScreen()


class DepthpruneApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "depthprune"
    BINDINGS = bindings("app")
    MODES = {"setup": SetupScreen, "runs": RunsScreen, "studies": lambda: studies_screen()}
    COMMANDS = App.COMMANDS | {ActionCommands}

    def __init__(
        self,
        runs_dir: Path,
        *,
        data_dir: Path | None = None,
        attach: Run | None = None,
        study: str | None = None,
        theme: str | None = None,
        config_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """`attach` opens on the Live screen, else `study` (a study's name) on the Study screen;
        `config_dir` None: no user settings or themes (tests); `clock` gives the time shown as elapsed."""
        super().__init__()
        self.runs_dir, self.data_dir, self.attach, self.study, self.clock = runs_dir, data_dir, attach, study, clock
        self.launches: list[Launch] = []
        self.watched: dict[str, Run] = {}  # runs opened in Live: the exit message names those still running
        self.settings = load_settings(config_dir) if config_dir is not None else Settings()
        themes, theme_problems = load_themes(theme_files(config_dir / "themes" if config_dir is not None else None))
        for loaded in themes:
            self.register_theme(loaded)
        self.problems = self.settings.problems + theme_problems
        self.keys = {a.id: a.key for a in ACTIONS} | self.settings.keys
        name = theme or self.settings.theme or DEFAULT_THEME
        if name not in self.available_themes:
            self.problems.append(f"unknown theme {name!r}; using {DEFAULT_THEME}")
            name = DEFAULT_THEME
        self.theme = name
        self.config_dir = config_dir
        self.mode_history: list[str] = []
        self.animation_level = "none"
        self.setup_values = {**DEFAULTS, "data_dir": str(data_dir or "")}  # the Setup fields, kept up to date

    @on(SetupValues)
    def remember_setup(self, message: SetupValues) -> None:
        self.setup_values = message.values

    def save_theme(self, theme) -> None:
        """A theme chosen in the palette is saved to config.toml (when the app has a config dir)."""
        theme = theme.name
        if self.config_dir is not None and theme != self.settings.theme:
            try:
                save_theme(self.config_dir, theme)
                self.settings.theme = theme
            except OSError as exc:
                self.notify(f"theme not saved: {exc}", severity="warning")

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return variable_defaults(self.current_theme)

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self.save_theme)
        self.set_keymap(self.settings.keys)
        if self.problems:
            self.notify(
                "\n".join(self.problems), title="Settings and themes (defaults used)", severity="error", timeout=15
            )
        if self.attach is not None:
            self.switch_mode("runs")
            self.open_live(self.attach)
        elif self.study is not None:
            from .screens.study import StudyScreen

            self.switch_mode("studies")
            self.push_screen(StudyScreen(self.study))
        else:
            self.switch_mode("setup")
        self.set_interval(1.0, self.reap)
        if not self.is_headless:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
            self.set_interval(TERMINAL_CHECK_SECONDS, self.check_terminal)

    def check_terminal(self) -> None:
        """A lost terminal (stdin no longer a TTY after a hangup) ends the app instead of spinning."""
        if not sys.stdin.isatty():
            self.exit()

    def reap(self) -> None:
        """Collect the exit status of finished children (no zombies)."""
        for launched in self.launches:
            launched.process.poll()

    def open_live(self, run: Run) -> None:
        self.watched[run.id] = run
        self.push_screen(LiveScreen(run))

    def open_compare(self, runs: list[Run]) -> None:
        self.push_screen(CompareScreen(runs))

    def start_child(self, argv: list[str], label: str, run_id: str | None = None) -> Launch:
        """Launch a depthprune command as a detached child (a search, resume, evaluation or export)."""
        launched = launch(argv, self.runs_dir, label, run_id)
        self.launches.append(launched)
        return launched

    def go_to(self, mode: str) -> None:
        """Show `mode`'s own screen (Setup, Runs, Studies), closing what was pushed on top of it."""
        if self.current_mode != mode:
            self.mode_history.append(self.current_mode)
            self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_open_setup(self) -> None:
        self.go_to("setup")

    def action_open_runs(self) -> None:
        self.go_to("runs")

    def action_open_studies(self) -> None:
        """Studies; the first time, its module is imported in a thread worker (seconds: scipy, torch)
        while a notice says so, and the screen opens once it is loaded."""
        if STUDIES_MODULE in sys.modules:
            self.go_to("studies")
            return
        self.notify("loading the study analyses (scipy, torch): a few seconds, once", timeout=20)

        def load() -> None:
            importlib.import_module(STUDIES_MODULE)
            self.call_from_thread(self.go_to, "studies")

        self.run_worker(load, thread=True, exclusive=True, group="load-studies")

    def back_from_mode(self) -> None:
        """Escape on Setup, Runs or Studies: back to the previously shown one of them."""
        previous = next((m for m in reversed(self.mode_history) if m != self.current_mode), None)
        if previous is None:
            self.notify("this is the first screen: f2 Setup · f3 Runs · f4 Studies · ctrl+q quits")
            return
        self.go_to(previous)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def detach_message(self) -> str:
        """How to reattach to every watched or launched run that a process still writes."""
        runs = dict(self.watched)
        runs.update((run.id, run) for run in (launched.run() for launched in self.launches) if run is not None)
        return "\n".join(
            f"run {run.id} keeps going (process {pid}); reattach with: "
            f"depthprune-tui --attach {run.id} --runs-dir {self.runs_dir}"
            for run in runs.values()
            if (pid := run.writer_pid()) is not None
        )

    def leave(self) -> None:
        """Exit, leaving runs going; the app's result (and the message printed after) says how to reattach."""
        message = self.detach_message()
        self.exit(result=message, message=message or None)

    async def action_quit(self) -> None:
        self.leave()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="depthprune-tui",
        description="Terminal UI of depthprune: start, watch, stop and compare block-pruning searches.",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs are stored (default: runs)")
    parser.add_argument("--data-dir", type=Path, help="folder with the official benchmark files, preset in Setup")
    parser.add_argument(
        "--attach",
        metavar="RUN",
        help="open the Live screen on this run (id or directory): "
        "tails it while it is written, replays it once finished",
    )
    parser.add_argument("--study", metavar="NAME", help="open the Study screen on this study of the runs directory")
    parser.add_argument(
        "--theme",
        help="theme name (shipped: depthprune-dark, depthprune-light, "
        "depthprune-high-contrast; user themes; Textual's)",
    )
    return parser.parse_args(argv)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad arguments are one line `error: ...` and exit code 2."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        sys.exit(0 if exc.code == 0 else 2)
    if args.data_dir is not None and not args.data_dir.is_dir():
        fail(f"data directory {str(args.data_dir)!r} (from --data-dir) not found")
    try:
        attach = Run.open(args.attach, args.runs_dir, "--attach") if args.attach else None
    except UserError as exc:
        fail(str(exc))
    if args.study is not None:
        from .study_view import list_studies  # imports the study analyses (scipy, torch): only when asked

        if args.study not in list_studies(args.runs_dir):
            fail(f"study {args.study!r} (from --study) not found in {str(args.runs_dir / 'studies')!r}")
    app = DepthpruneApp(
        args.runs_dir, data_dir=args.data_dir, attach=attach, study=args.study, config_dir=default_config_dir()
    )
    if args.theme is not None:
        if args.theme not in app.available_themes:
            fail(f"unknown theme {args.theme!r} (from --theme); available: {', '.join(sorted(app.available_themes))}")
        app.theme = args.theme
    app.run()
    if app.return_code:
        sys.exit(app.return_code)
