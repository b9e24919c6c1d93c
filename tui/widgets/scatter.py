"""A small scatter of a multi-term run: every complete k-set's first two terms, its Pareto front and
the dense model, drawn in the widget's cells.

Each cell holds 2 × 4 braille dots; evaluated k-sets are dots ($candidate), a cell holding a front
member shows `●` ($best-score), the run's chosen set `★`, the dense model `×` (bold), so glyphs, not
colour alone, tell them apart. x grows to the right and y upwards, each axis spanning the points
shown and the dense model's 0 (a degenerate range is widened by 1 around its value).
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widget import Widget

DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # braille bit of dot (row, column) in a cell
FRONT, CHOSEN, DENSE = "●", "★", "×"
Point = tuple[float, float]


def axis_range(values: list[float]) -> tuple[float, float]:
    """(low, high) of `values` and 0; widened by 1 around a single value."""
    low, high = min([0.0, *values]), max([0.0, *values])
    return (low - 1, high + 1) if high == low else (low, high)


def scatter_cells(
    cloud: list[Point], front: list[Point], chosen: Point | None, width: int, height: int
) -> list[list[tuple[str, str]]]:
    """`height` rows of `width` (glyph, kind) cells, kind one of "", "cloud", "front", "chosen",
    "dense" (see the module docstring); the dense model is the point (0, 0)."""
    everything = cloud + front + ([chosen] if chosen else [])
    (x0, x1), (y0, y1) = axis_range([p[0] for p in everything]), axis_range([p[1] for p in everything])

    def cell(p: Point, dots: int, size: int, low: float, high: float) -> int:
        return min(size * dots - 1, max(0, round((p - low) / (high - low) * (size * dots - 1))))

    bits = [[0] * width for _ in range(height)]
    marks: dict[tuple[int, int], tuple[str, str]] = {}
    for x, y in cloud:
        dx, dy = cell(x, 2, width, x0, x1), height * 4 - 1 - cell(y, 4, height, y0, y1)
        bits[dy // 4][dx // 2] |= DOTS[dy % 4][dx % 2]
    for kind, glyph, points in (("front", FRONT, front), ("chosen", CHOSEN, [chosen] if chosen else [])):
        for x, y in points:
            marks[(height - 1 - cell(y, 1, height, y0, y1), cell(x, 1, width, x0, x1))] = (glyph, kind)
    marks[(height - 1 - cell(0.0, 1, height, y0, y1), cell(0.0, 1, width, x0, x1))] = (DENSE, "dense")
    return [
        [marks.get((r, c), (chr(0x2800 + bits[r][c]), "cloud") if bits[r][c] else (" ", "")) for c in range(width)]
        for r in range(height)
    ]


class FrontScatter(Widget):
    """The scatter of the module docstring; `show` gives it the points, it draws at its size."""

    DEFAULT_CSS = "FrontScatter { height: 6; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cloud: list[Point] = []
        self.front: list[Point] = []
        self.chosen: Point | None = None

    def show(self, cloud: list[Point], front: list[Point], chosen: Point | None) -> None:
        self.cloud, self.front, self.chosen = cloud, front, chosen
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        if width < 1 or height < 1 or not (self.cloud or self.front):
            return Text("")
        variables = self.app.theme_variables
        styles = {
            "": Style(),
            "cloud": Style(color=Color.parse(variables["candidate"]).rich_color, dim=True),
            "front": Style(color=Color.parse(variables["best-score"]).rich_color, bold=True),
            "chosen": Style(color=Color.parse(variables["best-score"]).rich_color, bold=True),
            "dense": Style(bold=True),
        }
        out = Text()
        for r, row in enumerate(scatter_cells(self.cloud, self.front, self.chosen, width, height)):
            if r:
                out.append("\n")
            for glyph, kind in row:
                out.append(glyph, styles[kind])
        return out
