"""C4 (`allenai/c4`, English) as the GPTQ / SparseGPT / SLEB line of work uses it.

* Calibration (`--calib c4`): documents of the first English training shard
  `en/c4-train.00000-of-01024.json.gz`; each window is drawn as GPTQ's `get_c4` does: pick a
  document uniformly at random, redraw until its token count exceeds the window length, then take
  `seq_len` consecutive tokens at a uniformly random offset. The draws use `random.Random(seed)`, so a
  seed fixes the windows; documents are tokenized alone (tokenizer defaults).
* Evaluation (`--tasks c4`): the first 1100 documents of the validation shard
  `en/c4-validation.00000-of-00008.json.gz`, joined by " " (core/tasks.py cuts that text into windows).

Both shards are read as JSON lines (`text`, `timestamp`, `url`) through `datasets`, from the file
`huggingface_hub` fetched (or found in its cache, offline).
"""

from __future__ import annotations

import random

from .errors import UserError
from .hub import hub_file

REPO = "allenai/c4"
TRAIN_SHARD = "en/c4-train.00000-of-01024.json.gz"
VALIDATION_SHARD = "en/c4-validation.00000-of-00008.json.gz"


def shard_texts(shard: str, *, what: str, source: str) -> list[str]:
    """The `text` field of every document of one C4 shard, in file order."""
    from datasets import load_dataset

    path = hub_file(REPO, shard, what=what, source=source)
    try:
        return load_dataset("json", data_files=path, split="train")["text"]
    except Exception as exc:
        raise UserError(f"{what} (from {source}): {path} is not a C4 JSON-lines shard ({type(exc).__name__})") from None


def calibration_windows(tokenizer, n_windows: int, seq_len: int, seed: int) -> list[list[int]]:
    """`n_windows` random windows of `seq_len` tokens from training documents longer than `seq_len`."""
    docs = shard_texts(TRAIN_SHARD, what="calibration source 'c4'", source="--calib")
    rng = random.Random(seed)
    lengths: dict[int, list[int]] = {}
    out = []
    for _ in range(n_windows):
        while True:
            i = rng.randint(0, len(docs) - 1)
            if i not in lengths:
                lengths[i] = tokenizer(docs[i]).input_ids
            if len(lengths[i]) > seq_len:
                break
            if len(lengths) == len(docs) and all(len(v) <= seq_len for v in lengths.values()):
                raise UserError(
                    f"calibration source 'c4' (from --calib): no document of {TRAIN_SHARD} is longer "
                    f"than --calib-seq-len {seq_len} tokens"
                )
        ids = lengths[i]
        start = rng.randint(0, len(ids) - seq_len - 1)
        out.append(ids[start : start + seq_len])
    return out
