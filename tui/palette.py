"""Command-palette commands from the action registry: the app's actions and the current screen's."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.keys import format_key
from textual.markup import escape

from .actions import Action, actions

SCOPE_TITLES = {
    "app": "Go",
    "setup": "Setup",
    "live": "Live",
    "runs": "Runs",
    "compare": "Compare",
    "studies": "Studies",
    "study": "Study",
    "help": "Help",
}


class ActionCommands(Provider):
    def _commands(self) -> list[tuple[str, Action, object, str]]:
        """(title, action, target) for what can run now: the screen's actions, then the app's."""
        scope = getattr(self.screen, "SCOPE", None)
        keys = self.app.keys
        out = []
        for action, target in [(a, self.screen) for a in actions(scope)] + [(a, self.app) for a in actions("app")]:
            shown = " ".join(format_key(k) for k in keys.get(action.id, action.key).split(","))
            out.append((escape(f"{SCOPE_TITLES[action.scope]}: {action.description}"), action, target, shown))
        return out

    async def discover(self) -> Hits:
        for title, action, target, shown in self._commands():
            yield DiscoveryHit(title, partial(target.run_action, action.action), help=f"key: {shown}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, target, shown in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(title), partial(target.run_action, action.action), help=f"key: {shown}"
                )
