"""Setup's checking process: `python -m depthprune.tui.checker` validates form values off the UI.

It reads one JSON object of form values a line on stdin and writes one JSON line a check on
stdout: {"values", "errors", "hints", "blocks"}. Only the newest values waiting are checked. A
separate process, because the engine's registries import torch: in a thread of the app that
import holds the GIL for seconds and stalls the first paint, typing and quitting.
"""

from __future__ import annotations

import json
import select
import sys

from ..core.errors import UserError
from .setup_form import field_message, hints, validate


def check(values: dict[str, str], block_counts: dict) -> dict:
    from .model_info import block_count

    spec = values["model"].strip()
    if spec not in block_counts:
        try:
            block_counts[spec] = (block_count(spec), None)
        except UserError as exc:
            block_counts[spec] = (None, field_message(str(exc)))
    blocks, model_error = block_counts[spec]
    errors = validate(values, blocks) | ({"model": model_error} if model_error else {})
    return {"values": values, "errors": errors, "hints": hints(), "blocks": blocks}


def main() -> None:
    block_counts: dict = {}
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        while select.select([sys.stdin], [], [], 0)[0]:  # newer values waiting: check those instead
            newer = sys.stdin.readline()
            if not newer:
                return
            line = newer
        print(json.dumps(check(json.loads(line), block_counts)), flush=True)


if __name__ == "__main__":
    main()
