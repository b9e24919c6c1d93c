"""Recovering what block removal loses, into stock checkpoints (`depthprune heal`).

* `linear` (training-free, ReplaceMe): each maximal contiguous removed segment is replaced by one d x d
  map fused into the MLP output projection of the block before it (`heal.linear`).
* `lora` (trained): LoRA adapters on the pruned model, trained on calibration text and merged into the
  weights at the end (`heal.lora`), with resumable safetensors checkpoints (`heal.state`).

Both read their calibration windows from `heal.data` and are driven by `heal.pipeline`, which
measures before/after metrics, writes the checkpoint through the export path and records the run event.
"""

METHODS = ("linear", "lora")  # here, not in heal.pipeline, so that choosing one imports no torch
