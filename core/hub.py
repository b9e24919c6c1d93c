"""The Hugging Face hub, for datasets and single repository files, with every failure as one UserError line.

`hub_dataset(path, name, split)` is `datasets.load_dataset(path, name, split=split)` — the ids and
configs lm-eval uses — and `hub_file(repo, filename)` is `huggingface_hub.hf_hub_download` for a
dataset repository file (the C4 shards). Both honour `HF_HUB_OFFLINE`/`HF_DATASETS_OFFLINE`, `HF_HOME`
and `HF_HUB_CACHE`: offline, `datasets` reads the dataset prepared in its cache by an earlier online
load (`$HF_HOME/datasets/<org>___<name>/<config>/…`), and `hf_hub_download` reads the hub cache
(`$HF_HOME/hub/datasets--<org>--<name>/snapshots/<commit>/…`).

A failure names the repository (and config) and what to do: go online or pre-download it, request
access for a gated repository, pick an existing config, or use the official files with --data-dir.
"""

from __future__ import annotations

from .errors import UserError


def _advice(exc: BaseException, repo: str) -> str:
    """What went wrong with a hub repository, and what the user can do about it (one line)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, GatedRepoError) for e in chain) or "gated" in text:
        return (
            f"{repo} is a gated repository: accept its terms at https://huggingface.co/{repo} and log in "
            f"(hf auth login or HF_TOKEN)"
        )
    if any(isinstance(e, RevisionNotFoundError) for e in chain) or ("Revision" in text and "doesn't exist" in text):
        return f"{repo}: that revision does not exist"
    if (
        any(isinstance(e, (OfflineModeIsEnabled, ConnectionError)) for e in chain)
        or "offline" in text.lower()
        or "not cached" in text
        or "Couldn't reach" in text
        or "couldn't find cache" in text.lower()
    ):
        return (
            f"{repo} is not in the local Hugging Face cache and the hub cannot be reached (offline); "
            f"download it once online (or set HF_HOME to a cache that has it)"
        )
    if any(isinstance(e, RepositoryNotFoundError) for e in chain) or "doesn't exist" in text:
        return f"{repo} does not exist on the hub or needs a login (hf auth login or HF_TOKEN)"
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{repo}: {type(exc).__name__}: {first}"


def hub_dataset(
    path: str, name: str | None, split: str, *, task: str, source: str = "--tasks", revision: str | None = None
):
    """`datasets.load_dataset(path, name, split=split)`; a UserError naming the repository otherwise."""
    repo = path + (f" (config {name})" if name else "")
    try:
        from datasets import load_dataset

        return load_dataset(path, name, split=split, revision=revision)
    except Exception as exc:  # offline and not cached, gated, missing config or split, renamed repository
        message = str(exc)
        if (
            "BuilderConfig" in message
            or "Available configs" in message
            or "Unknown split" in message
            or "Bad split" in message
        ):
            first = message.splitlines()[0]
            raise UserError(
                f"{task!r} (from {source}): hub dataset {repo}, split {split!r}: {first}; "
                f"pass --data-dir with the official files"
            ) from None
        raise UserError(
            f"{task!r} (from {source}): cannot load the hub dataset {repo}, split {split!r}: "
            f"{_advice(exc, path)}; or pass --data-dir with the official files"
        ) from None


def hub_file(repo: str, filename: str, *, what: str, source: str, revision: str | None = None) -> str:
    """The local path of one file of a hub dataset repository (downloaded once, then read from the cache)."""
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo, filename, repo_type="dataset", revision=revision)
    except Exception as exc:
        from huggingface_hub.errors import EntryNotFoundError

        if (
            isinstance(exc, EntryNotFoundError)
            and "offline" not in str(exc).lower()
            and "cannot find the requested files in the local cache" not in str(exc).lower()
        ):
            raise UserError(f"{what} (from {source}): hub dataset {repo} has no file {filename!r}") from None
        raise UserError(
            f"{what} (from {source}): cannot get {filename!r} of the hub dataset {repo}: {_advice(exc, repo)}"
        ) from None


def model_commit(repo: str, revision: str | None) -> str | None:
    """The commit hash a hub model id (at `revision`: branch, tag or commit) resolves to — read from
    the cache once `from_pretrained` has fetched it."""
    from huggingface_hub import hf_hub_download
    from transformers.utils.hub import extract_commit_hash

    try:
        return extract_commit_hash(hf_hub_download(repo, "config.json", revision=revision), None)
    except Exception:  # the model loaded, so this only fails for exotic layouts: record the request
        return revision
