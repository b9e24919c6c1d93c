"""`mix:ppl=0.5,margin=0.5`: a weighted sum of objectives, each normalised against the dense model.

Definition. For terms (objective f_i, weight w_i), each f_i calibrated on its own data,

    mix(removed) = sum_i w_i * t_i(removed),   t_i = (f_i(removed) - f_i(dense)) / s_i,
    s_i = max(|f_i(dense)|, SCALE_FLOOR)

where f_i(dense) is the term's value with no block removed (measured once, when the objective is
built). A term is the relative change of its objective against the dense model: 0 for the dense
model, +1 when the value has moved by its own magnitude in the worse direction, whatever its sign
(`margin` is usually negative, mean NLL positive); `SCALE_FLOOR` keeps a term whose dense value is
about 0 from dividing by it. Lower is better, like every objective. Weights are positive and need
not sum to 1. Every evaluation also reports the unweighted terms t_i ({objective name: t_i},
`Objective.terms_of`): the vector a multi-objective searcher (nsga2) compares; the dense model is the
point 0 in every term.

A mix concatenates its terms' calibration batches, so the search loop, the prefix cache and the
engine signals treat it as one objective with more batches; batch i is reduced by the term that
owns it. It never aborts early (no lower bound), and it has no per-sample loss (cbo refuses it).
"""

from __future__ import annotations

import math

from ..core.errors import UserError
from .base import Objective

PREFIX = "mix:"
SCALE_FLOOR = 1e-3


def is_mix(name: str) -> bool:
    return name.startswith(PREFIX)


def split_objectives(text: str) -> list[str]:
    """A comma-separated list of objectives in which a mix keeps its terms: `ppl,mix:ppl=0.5,margin=0.5`
    -> ["ppl", "mix:ppl=0.5,margin=0.5"] (a `name=weight` part continues the mix before it)."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" in part and not is_mix(part) and out and is_mix(out[-1]):
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def parse_mix(spec: str, known: list[str], source: str = "--objective") -> list[tuple[str, float]]:
    """[(objective name, weight)] of `mix:name=weight,...`; a UserError naming the spec and `source`
    for an unknown or repeated term, a nested mix, or a weight that is not a positive number."""
    body = spec[len(PREFIX) :]
    terms: list[tuple[str, float]] = []
    for part in body.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(
                f"objective {spec!r} (from {source}): each term is name=weight, as in mix:ppl=0.5,margin=0.5"
            )
        if name not in known:
            raise UserError(f"objective {spec!r} (from {source}): unknown term {name!r}; terms: {', '.join(known)}")
        if name in (n for n, _ in terms):
            raise UserError(f"objective {spec!r} (from {source}): term {name!r} given twice")
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UserError(
                f"objective {spec!r} (from {source}): weight {weight.strip()!r} of {name} must be a finite number > 0"
            )
        terms.append((name, value))
    return terms


class Mix(Objective):
    """The weighted, dense-normalised sum of built objectives (see the module docstring)."""

    name = "mix"

    def __init__(self, spec: str, terms: list[tuple[float, Objective]]):
        self.spec, self.terms = spec, terms
        first = terms[0][1]
        self.engine, self.cache = first.engine, None
        self.batches = [b for _, o in terms for b in o.batches]
        self.inputs = [x for _, o in terms for x in o.inputs]
        self.n_pairs = sum(o.n_pairs for _, o in terms)
        self.max_length = max(o.max_length for _, o in terms)
        self.owners: list[tuple[Objective, int]] = [(o, j) for _, o in terms for j in range(len(o.batches))]
        self.dense = [o(()) for _, o in terms]
        self.scales = [max(abs(d), SCALE_FLOOR) for d in self.dense]

    def batch_stats(self, i, hidden):
        owner, local = self.owners[i]
        return owner.batch_stats(local, hidden)

    def term_values(self, stats: list) -> list[float]:
        """Each term's own objective value, from the statistics of all batches."""
        values, start = [], 0
        for _, objective in self.terms:
            values.append(objective.combine(stats[start : start + len(objective.batches)]))
            start += len(objective.batches)
        return values

    def terms_of(self, stats) -> dict[str, float]:
        """{term name: t_i}, each term's dense-normalised value (see the module docstring)."""
        return {
            o.name: (v - d) / s for (_, o), v, d, s in zip(self.terms, self.term_values(stats), self.dense, self.scales)
        }

    def combine(self, stats) -> float:
        return sum(w * t for (w, _), t in zip(self.terms, self.terms_of(stats).values()))

    def dense_term_values(self) -> dict[str, float]:
        return {o.name: d for (_, o), d in zip(self.terms, self.dense)}

    def describe(self) -> dict:
        return {
            "objective": self.spec,
            "calib": ",".join(o.describe()["calib"] for _, o in self.terms),
            "terms": [
                {"weight": w, "dense": d, "scale": s, **o.describe()}
                for (w, o), d, s in zip(self.terms, self.dense, self.scales)
            ],
        }
