"""Per-block importance bars: one row per block (original indices), removed blocks marked ✖.

Bar length is the block's importance scaled between the lowest and the highest importance shown
(lowest = shortest = most removable), drawn with eighth blocks. Colour runs from $importance-low to
$importance-high; removed blocks use $removed-layer *and* the glyph, so colour is never the only
sign. Every row shows its value with the same number of decimals (`decimals`), so rows compare
at a glance. Only visible rows are rendered (line API).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.color import Color
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..comparison import REMOVED_GLYPH

EIGHTHS = " ▏▎▍▌▋▊▉"
VALUE_WIDTH = 10


def bar(fraction: float, width: int) -> str:
    """A bar `fraction` (0..1) of `width` cells long, at least one eighth of a cell."""
    eighths = max(1, round(max(0.0, min(1.0, fraction)) * width * 8))
    return ("█" * (eighths // 8) + EIGHTHS[eighths % 8].strip()).ljust(width)


def decimals(values) -> int:
    """Decimals that give about 4 significant digits to the largest magnitude among `values`."""
    largest = max((abs(v) for v in values), default=0.0)
    return max(0, 4 - len(str(int(largest)))) if largest >= 1 else 4


class ImportanceBars(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("home", "move(-1000)", show=False),
        Binding("end", "move(1000)", show=False),
    ]

    cursor = reactive(0)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.n_blocks = 0
        self.importance: dict[int, float] = {}
        self.removed: frozenset[int] = frozenset()

    def show(self, n_blocks: int, importance: dict[int, float], removed) -> None:
        self.n_blocks, self.importance, self.removed = n_blocks, dict(importance), frozenset(removed)
        self.virtual_size = Size(self.size.width, n_blocks)
        self.refresh()

    def action_move(self, step: int) -> None:
        self.cursor = max(0, min(self.n_blocks - 1, self.cursor + step))
        self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False)

    def watch_cursor(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        block = self.scroll_offset.y + y
        base = self.rich_style
        if block >= self.n_blocks:
            return Strip.blank(width, base)
        variables = self.app.theme_variables
        removed = block in self.removed
        mark = "▶" if block == self.cursor else " "
        head = f"{mark}{block:>3} {REMOVED_GLYPH if removed else ' '} "
        bar_width = max(1, width - len(head) - VALUE_WIDTH)
        value = self.importance.get(block)
        segments = [Segment(head, base + Style(bold=removed))]
        if value is None:
            segments.append(Segment("·".ljust(bar_width), base + Style(dim=True)))
        else:
            low, high = min(self.importance.values()), max(self.importance.values())
            fraction = (value - low) / (high - low) if high > low else 1.0
            colour = (
                Color.parse(variables["removed-layer"])
                if removed
                else Color.parse(variables["importance-low"]).blend(Color.parse(variables["importance-high"]), fraction)
            )
            segments.append(Segment(bar(fraction, bar_width), base + Style(color=colour.rich_color)))
        tail = f" {value:.{decimals(self.importance.values())}f}" if value is not None else ""
        segments.append(Segment(tail.ljust(VALUE_WIDTH), base))
        return Strip(segments).crop(0, width)
