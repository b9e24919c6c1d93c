"""`heal --method lora`: LoRA healing of the pruned model (Shortened LLaMA, LLM-Pruner), merged into the weights.

Definition. The model with the removed blocks skipped gets LoRA adapters (peft; rank r, alpha, no dropout)
on `targets` (peft module names, default every linear layer of the blocks: `all-linear`) of the kept
blocks, and is trained for `steps` AdamW steps (constant `lr`, no weight decay) on the calibration windows:
step s takes windows s*b .. s*b+b-1 of an endless stream of seeded permutations of the windows (b =
`batch_size`), so the data of a step depends only on the seed and the step. Loss: the mean next-token
cross-entropy over positions 1..L-1 (`ppl`), or with `distill` the mean over those positions of
KL(p_dense || p_healed), the dense model's distribution recomputed from its stored post-norm hidden states.
Base weights stay frozen in the model's dtype (fp32 on CPU, bf16 on GPU); adapters are fp32. At the end
the adapters are merged (W + (alpha / r) B A) and removed: the model is again a stock architecture.

Every `save_every` steps the training state is checkpointed (`heal.state`); `resume` continues from it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.engine import Engine
from ..core.errors import UserError
from ..core.loading import LoadedModel
from ..core.runs import fault_point
from .data import CalibrationWindows
from .state import TrainState, load_state, save_state


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    targets: str = "all-linear"
    steps: int = 200
    lr: float = 2e-4
    batch_size: int = 2
    save_every: int = 50
    distill: bool = False
    seed: int = 0

    def check(self) -> None:
        for name, flag in (
            ("rank", "--rank"),
            ("steps", "--steps"),
            ("batch_size", "--batch-size"),
            ("save_every", "--save-every"),
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{flag} {getattr(self, name)} must be at least 1")
        if not self.lr > 0 or not self.alpha > 0:
            raise UserError(f"--lr {self.lr} and --alpha {self.alpha} must be positive")
        if not [t for t in self.targets.split(",") if t.strip()]:
            raise UserError(f"no LoRA target module given (from --targets {self.targets!r})")


def _peft():
    try:
        import peft
    except ImportError:
        raise UserError("--method lora needs peft: pip install 'depthprune[heal]'") from None
    return peft


def step_windows(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Window indices of (0-based) `step`: positions step*b .. step*b+b-1 of concatenated seeded permutations."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(int(perm[offset]))
    return out


def _settings(s: LoraSettings, removed, calib: CalibrationWindows, lm: LoadedModel) -> dict:
    """What determines the training (a checkpoint written under other settings is not resumed)."""
    return {
        **asdict(s),
        "removed": sorted(removed),
        "data_sha256": calib.sha256,
        "model_id": lm.model_id,
        "revision": lm.revision,
        "dtype": lm.dtype,
        "weights": _weights_digest(lm.model),
    }


def _weights_digest(model: torch.nn.Module) -> str:
    """A cheap fingerprint of the base weights (shapes and a few values of every tensor)."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.state_dict().items():
            flat = p.reshape(-1)
            digest.update(f"{name}{tuple(p.shape)}".encode())
            digest.update(flat[:: max(1, flat.numel() // 16)].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _dense_hidden(engine: Engine, calib: CalibrationWindows, batch_size: int) -> list[torch.Tensor]:
    """Post-norm hidden states of the dense model for every window (for the distillation target)."""
    with torch.no_grad():
        return [
            h
            for s in range(0, calib.ids.shape[0], batch_size)
            for h in engine.final_hidden(calib.ids[s : s + batch_size], None)
        ]


def _loss(lm: LoadedModel, engine: Engine, removed, ids: torch.Tensor, dense: torch.Tensor | None) -> torch.Tensor:
    with engine.skipping(removed):
        logits = lm.model(input_ids=ids.to(engine.device), use_cache=False).logits[:, :-1].float()
    if dense is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1).to(logits.device))
    with torch.no_grad():
        target = torch.log_softmax(engine.logits(dense[:, :-1].to(engine.device)), -1)
    return F.kl_div(torch.log_softmax(logits, -1), target, log_target=True, reduction="none").sum(-1).mean()


def heal_lora(
    lm: LoadedModel,
    removed,
    calib: CalibrationWindows,
    settings: LoraSettings,
    state_dir: Path,
    *,
    resume: bool = False,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Train, merge and unload LoRA adapters on `lm.model` in place (the removed blocks stay in the
    model, untouched: export removes them). `progress("lora", step, steps, loss=...)` after each step."""
    settings.check()
    peft = _peft()
    removed = sorted(removed)
    engine = Engine(lm.model, lm.family)
    fingerprint = _settings(settings, removed, calib, lm)
    dense = _dense_hidden(engine, calib, settings.batch_size) if settings.distill else None
    torch.manual_seed(settings.seed)
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=_targets(settings.targets),
        bias="none",
    )
    with engine.skipping(removed):  # removed blocks are not in the model while adapters are injected
        try:
            wrapped = peft.get_peft_model(lm.model, config)
        except ValueError as exc:
            raise UserError(f"LoRA targets {settings.targets!r} (from --targets): {str(exc).splitlines()[0]}") from None
        # the adapters only: peft froze what it saw, and the removed blocks (absent here) are never trained
        params = {n: p for n, p in lm.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(params.values(), lr=settings.lr, weight_decay=0.0)
    state = (load_state(state_dir, params, optimizer, fingerprint) if resume else None) or TrainState(0, [])
    resumed_at = state.step
    started = time.perf_counter()
    n = calib.ids.shape[0]
    for step in range(state.step, settings.steps):
        rows = step_windows(step, n, settings.batch_size, settings.seed)
        target = None if dense is None else torch.stack([dense[r] for r in rows])
        loss = _loss(lm, engine, removed, calib.ids[rows], target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state = TrainState(step + 1, [*state.losses, float(loss.detach())])
        fault_point("heal-step")
        if progress:
            progress("lora", state.step, settings.steps, loss=state.losses[-1])
        if state.step % settings.save_every == 0 or state.step == settings.steps:
            save_state(state_dir, params, optimizer, state, fingerprint)
    with torch.no_grad():
        wrapped.merge_and_unload()
    lm.model.eval()
    for p in lm.model.parameters():
        p.requires_grad_(False)
    return {
        "steps": settings.steps,
        "resumed_at_step": resumed_at,
        "losses": state.losses,
        "trainable_parameters": sum(p.numel() for p in params.values()),
        "train_seconds": round(time.perf_counter() - started, 3),
        **asdict(settings),
    }


def _targets(text: str):
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names[0] if names == ["all-linear"] else names
