"""`heal --method linear`: training-free ReplaceMe compensation (arXiv 2505.02819, `mts-ai/ReplaceMe` lstsq.py),
fused into existing weights so the healed model is a stock checkpoint with no new parameters.

Definition. For each maximal contiguous segment of removed blocks i..j, on the dense model's calibration
activations (every segment from the same dense pass, as ReplaceMe does), with block p = i - 1 kept:
* M: the output of block p's MLP output projection (the family's `mlp_out`), the MLP's contribution to
  the residual stream; Y = h_p - M, block p's residual stream without it (h_p: block p's output);
* L: the residual stream after block j (before the final norm);
* T = argmin_T ||M T + Y - L||^2 + lam ||T - I||^2 over the kept token positions, i.e. the normal equations
  (M^T M + lam I) T = M^T (L - Y) + lam I, accumulated batch by batch in float64 (activations are never
  held), with lam = ridge * mean(diag(M^T M)) (scale-free). ridge 0 is ReplaceMe's default, plain least
  squares; unlike ReplaceMe's ridge (which shrinks T toward 0, i.e. toward dropping block i-1's MLP),
  this one shrinks T toward the identity, i.e. toward the uncompensated pruned model.
* T is fused into the projection: output x W^T + b becomes (x W^T + b) T, i.e. W <- T^T W, b <- T^T b
  (transformers' Conv1D, GPT-2, stores W transposed: W <- W T).
The first `skip_positions` positions of every window are left out of the fit: the residual stream's
outliers sit there and an unweighted fit spends itself on them (shared/research/compensation.md).

Where fusion is exact (the family table's `mlp_out`): the projection's output must reach the residual
stream unchanged. Gemma2/3 pass it through post_feedforward_layernorm first, so T cannot be fused there:
refused. A segment starting at block 0 has no block before it: refused (keep block 0, e.g. search with
`--protect 0`). Before fitting, a probe proves exactness on the actual model: adding a perturbation to
the projection's output must change block p's output by exactly that perturbation (it refuses e.g. OPT
with post-norm blocks, `do_layer_norm_before=false`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.engine import Engine
from ..core.errors import UserError
from ..core.families import Family, get_path
from ..core.loading import LoadedModel
from .data import CalibrationWindows


def segments(removed) -> list[tuple[int, int]]:
    """Maximal runs of consecutive indices: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for i in sorted(removed):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def family_refusal(family: Family) -> str | None:
    """Why linear healing cannot be fused exactly into `family`'s blocks (the family table's rule), or None."""
    if family.mlp_out is None:
        return "its MLP output passes a norm (post_feedforward_layernorm) before the residual add"
    return None


def check_fusable(lm: LoadedModel, removed) -> list[tuple[int, int]]:
    """The segments of `removed`, or a UserError when linear healing cannot be fused exactly."""
    refusal = family_refusal(lm.family)
    if refusal:
        raise UserError(
            f"linear healing cannot be fused exactly into {lm.family.model_type} (model {lm.spec!r}): "
            f"{refusal}; use --method lora"
        )
    segs = segments(removed)
    if not segs:
        raise UserError("nothing was removed: there is nothing to heal (from --remove)")
    if segs[0][0] == 0:
        raise UserError(
            f"removed segment {segs[0][0]}-{segs[0][1]} starts at block 0: linear healing fuses into "
            f"the block before a segment and there is none; keep block 0 (search with --protect 0) "
            f"or use --method lora"
        )
    return segs


@dataclass
class NormalEquations:
    """Streaming sums for min_T ||X T - R||^2: X^T X, X^T R, sum R^2 and the row count, in float64."""

    d: int
    xtx: torch.Tensor = field(init=False)
    xtr: torch.Tensor = field(init=False)
    rr: float = 0.0
    rows: int = 0

    def __post_init__(self) -> None:
        self.xtx = torch.zeros(self.d, self.d, dtype=torch.float64)
        self.xtr = torch.zeros(self.d, self.d, dtype=torch.float64)

    def add(self, x: torch.Tensor, r: torch.Tensor) -> None:
        x, r = x.reshape(-1, self.d).double().cpu(), r.reshape(-1, self.d).double().cpu()
        self.xtx += x.T @ x
        self.xtr += x.T @ r
        self.rr += float((r * r).sum())
        self.rows += x.shape[0]

    def solve(self, ridge: float) -> torch.Tensor:
        """argmin_T ||X T - R||^2 + lam ||T - I||^2 = (X^T X + lam I)^+ (X^T R + lam I), with
        lam = ridge * mean(diag(X^T X)) (minimum-norm when singular)."""
        eye = torch.eye(self.d, dtype=torch.float64)
        lam = ridge * float(self.xtx.diagonal().mean())
        return torch.linalg.lstsq(self.xtx + lam * eye, self.xtr + lam * eye, driver="gelsd").solution

    def mse(self, t: torch.Tensor) -> float:
        """Mean squared error per element of X T - R."""
        sq = float((t * (self.xtx @ t)).sum()) - 2 * float((t * self.xtr).sum()) + self.rr
        return max(sq, 0.0) / max(self.rows * self.d, 1)


def _projection(engine: Engine, block: int, path: str) -> nn.Module:
    module = get_path(engine.blocks[block], path)
    if module is None or not hasattr(module, "weight"):
        raise UserError(
            f"block {block} of this {engine.family.model_type} model has no {path!r} projection to fuse into"
        )
    return module


def _probe_exact(engine: Engine, block: int, proj: nn.Module, inputs, hidden: torch.Tensor) -> None:
    """Adding δ to the projection's output must add exactly δ to block `block`'s output."""
    generator = torch.Generator().manual_seed(0)
    delta: list[torch.Tensor] = []

    def perturb(_module, _args, output):
        if not delta:
            delta.append(torch.randn(output.shape, generator=generator).to(output) * output.detach().abs().mean())
        return output + delta[0]

    run = engine.blocks[block]
    with torch.no_grad():
        base = run(hidden, *inputs.args[block], **inputs.kwargs[block])
        handle = proj.register_forward_hook(perturb)
        try:
            moved = run(hidden, *inputs.args[block], **inputs.kwargs[block])
        finally:
            handle.remove()
    base, moved = (o[0] if isinstance(o, tuple) else o for o in (base, moved))
    err = float(((moved - base).reshape(delta[0].shape) - delta[0]).abs().max())
    if err > 1e-3 * float(delta[0].abs().max()) + 1e-5:
        raise UserError(
            f"linear healing cannot be fused exactly into block {block} of this "
            f"{engine.family.model_type} model: the MLP output does not reach the residual stream "
            f"unchanged (e.g. a norm after the residual add); use --method lora"
        )


def accumulate(
    engine: Engine,
    calib: CalibrationWindows,
    segs: list[tuple[int, int]],
    *,
    skip_positions: int,
    batch_size: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[NormalEquations]:
    """One dense pass over the calibration windows: the normal equations of every segment."""
    path = engine.family.mlp_out
    assert path is not None, "check_fusable refuses families without an MLP output projection"
    projs = [_projection(engine, i - 1, path) for i, _ in segs]
    eqs: list[NormalEquations] = []
    n, seq_len = calib.ids.shape
    if skip_positions >= seq_len:
        raise UserError(
            f"--skip-positions {skip_positions} leaves no position of windows of {seq_len} tokens "
            f"(from --calib-seq-len)"
        )
    for start in range(0, n, batch_size):
        ids = calib.ids[start : start + batch_size]
        inputs = engine.capture(ids)
        outputs: dict[int, torch.Tensor] = {}
        states: dict[int, torch.Tensor] = {}
        handles = [
            p.register_forward_hook(lambda _m, _a, out, k=k, seen=outputs: seen.__setitem__(k, out.detach()))
            for k, p in enumerate(projs)
        ]
        try:
            final = engine.run_blocks(inputs, record=states.__setitem__)
        finally:
            for h in handles:
                h.remove()
        states[engine.n_blocks] = final
        if start == 0:
            for k, (i, _) in enumerate(segs):
                _probe_exact(engine, i - 1, projs[k], inputs, states[i - 1])
            eqs = [NormalEquations(final.shape[-1]) for _ in segs]
        for k, (i, j) in enumerate(segs):
            m = outputs[k].reshape(states[i].shape)[:, skip_positions:]  # OPT flattens the tokens inside its MLP
            y = states[i][:, skip_positions:] - m  # block i-1's output minus its MLP contribution
            eqs[k].add(m, states[j + 1][:, skip_positions:] - y)
        if progress:
            progress("linear fit", min(start + batch_size, n), n)
    return eqs


@torch.no_grad()
def fuse(proj: nn.Module, t: torch.Tensor) -> None:
    """Make `proj`'s output (x W^T + b) become (x W^T + b) T, in place, computed in float64."""
    weight: torch.Tensor = proj.weight  # type: ignore[assignment]
    bias: torch.Tensor | None = getattr(proj, "bias", None)
    t = t.to(device=weight.device)
    if type(proj).__name__ == "Conv1D":  # transformers' GPT-2 layer: y = x W + b, W [in, out]
        weight.copy_((weight.double() @ t).to(weight.dtype))
    else:
        weight.copy_((t.T @ weight.double()).to(weight.dtype))
    if bias is not None:
        bias.copy_((bias.double() @ t).to(bias.dtype))


def heal_linear(
    lm: LoadedModel,
    removed,
    calib: CalibrationWindows,
    *,
    ridge: float = 0.0,
    skip_positions: int = 4,
    batch_size: int = 8,
    progress=None,
) -> dict:
    """Fit and fuse one map per segment into `lm.model` in place (the removed blocks stay in the model,
    unchanged: export removes them). Returns per segment the fit's size and error."""
    if ridge < 0:
        raise UserError(f"--ridge {ridge} must be at least 0")
    segs = check_fusable(lm, removed)
    path = lm.family.mlp_out
    assert path is not None  # check_fusable refused the families without one
    engine = Engine(lm.model, lm.family)
    eqs = accumulate(engine, calib, segs, skip_positions=skip_positions, batch_size=batch_size, progress=progress)
    report = []
    for (i, j), eq in zip(segs, eqs):
        t = eq.solve(ridge)
        identity = torch.eye(eq.d, dtype=torch.float64)
        report.append(
            {
                "segment": [i, j],
                "fused_into": f"block {i - 1} {path}",
                "tokens": eq.rows,
                "mse_identity": eq.mse(identity),
                "mse_fitted": eq.mse(t),
            }
        )
        fuse(_projection(engine, i - 1, path), t)
    return {"segments": report, "ridge": ridge, "skip_positions": skip_positions}
