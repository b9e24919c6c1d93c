"""Resumable training state of a LoRA heal: one safetensors file, replaced atomically.

It holds the adapter weights (`adapter.<parameter name>`), the optimizer state (`optimizer.<index>.<key>`,
parameters in named order), the torch RNG state (`rng.torch`), and in its metadata the step reached, the
losses so far and the settings that produced it. Resuming from it restores all of these, so a heal
killed at any point (SIGKILL included) ends with the same final weights as one never interrupted.
Nothing is unpickled: safetensors holds tensors and strings only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..core.errors import UserError
from ..core.runs import fault_point

STATE_FILE = "state.safetensors"


@dataclass
class TrainState:
    """What a checkpoint restores: the step reached and the losses of steps 1..step."""

    step: int
    losses: list[float]


def save_state(
    directory: Path,
    params: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    settings: dict,
) -> None:
    """Write the checkpoint to a temporary file, fsync it and rename it over the previous one."""
    tensors = {f"adapter.{name}": p.detach().cpu().contiguous() for name, p in params.items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "step": str(state.step),
        "losses": json.dumps(state.losses),
        "settings": json.dumps(settings, sort_keys=True),
        "param_groups": json.dumps([{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]),
    }
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{STATE_FILE}.tmp"
    save_file(tensors, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    fault_point("heal-save")
    os.replace(tmp, directory / STATE_FILE)


def load_state(
    directory: Path, params: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer, settings: dict
) -> TrainState | None:
    """Restore a checkpoint into `params` and `optimizer` and the RNG; None when there is none.
    A checkpoint written with other settings is a UserError (start afresh without --resume)."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        stored = json.loads(meta["settings"])
        step, losses, groups = int(meta["step"]), json.loads(meta["losses"]), json.loads(meta["param_groups"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise UserError(
            f"{path}: unreadable heal checkpoint ({type(exc).__name__}) (from --resume); delete it to start afresh"
        ) from None
    if stored != json.loads(json.dumps(settings, sort_keys=True)):
        changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        raise UserError(
            f"{path}: the checkpoint was written with other settings ({', '.join(changed)}) "
            f"(from --resume); rerun with the same options or delete it to start afresh"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[f"adapter.{name}"])
    opt = optimizer.state_dict()
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, field = key.split(".", 2)
            state.setdefault(int(index), {})[field] = value
    for g, stored_group in zip(opt["param_groups"], groups):
        g.update(stored_group)
    optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return TrainState(step, losses)
