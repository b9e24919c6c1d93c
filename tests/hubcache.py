"""A Hugging Face cache in a folder, laid out as the real libraries write it after one online load.

* `hub/` (`HF_HUB_CACHE`), huggingface_hub 2.4's layout: `<type>s--<org>--<name>/blobs/<sha256>`,
  `snapshots/<commit>/<path>` as relative symlinks to the blobs, `refs/<branch>` holding the commit.
  Model repositories hold a `save_pretrained` directory; dataset repositories hold a `README.md`
  whose YAML `configs:` names each config's parquet shards (as the hub's own parquet repositories
  do), the shards, and for C4 the JSON-lines `.gz` shards.
* `datasets/` (`HF_DATASETS_CACHE`): what `datasets` 5.2 reads when offline. Offline,
  `load_dataset(repo, config)` never opens the hub cache: it falls back to the dataset prepared by an
  earlier online load, `<org>___<name>/<config>/0.0.0/<commit>/` (`dataset_info.json` + Arrow
  files). `prepare_dataset` produces it with the library's own code path: the module `datasets`
  builds from the repository's README (here read from the snapshot folder) and the builder it
  instantiates with the hub repository's name and commit, then `download_and_prepare`.

Nothing here is mocked: loaders under test call `from_pretrained`, `load_dataset` and
`hf_hub_download` with `HF_HOME` pointing at this folder and offline mode on.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml


def commit_of(*parts: str) -> str:
    """A deterministic 40-hex commit id."""
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def write_repo(
    hub: Path, repo_id: str, repo_type: str, files: dict[str, bytes], commit: str, branch: str | None = "main"
) -> Path:
    """Add one snapshot of a repository to the hub cache; returns the snapshot folder."""
    root = hub / "--".join([f"{repo_type}s", *repo_id.split("/")])
    snapshot = root / "snapshots" / commit
    for rel, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        blob = root / "blobs" / sha
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    if branch:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / branch).write_text(commit)
    return snapshot


def write_model(hub: Path, repo_id: str, model, tokenizer, commit: str, branch: str | None = "main") -> Path:
    """A model repository holding `model.save_pretrained` and `tokenizer.save_pretrained`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
    return write_repo(hub, repo_id, "model", files, commit, branch)


def _parquet(rows: list[dict], features) -> bytes:
    import io

    import pyarrow.parquet as pq
    from datasets import Dataset

    buffer = io.BytesIO()
    pq.write_table(Dataset.from_list(rows, features=features).data.table, buffer)
    return buffer.getvalue()


def write_dataset(
    hf_home: Path,
    repo_id: str,
    configs: dict[str | None, dict[str, list[dict]]],
    features,
    pattern: str = "{config}/{split}-00000-of-00001.parquet",
) -> str:
    """A parquet dataset repository (hub cache) and its prepared form (datasets cache), per config and
    split; `None` is the repository's `default` config (its shards under `data/`). Returns the commit."""
    commit = commit_of(repo_id, *map(str, configs))
    files, card = {}, []
    for config, splits in configs.items():
        name = config or "default"
        entry = {"config_name": name, "data_files": []}
        for split, rows in splits.items():
            path = pattern.format(config=config or "data", split=split)
            files[path] = _parquet(rows, features)
            entry["data_files"].append({"split": split, "path": path})
        card.append(entry)
    files["README.md"] = ("---\n" + yaml.safe_dump({"configs": card}, sort_keys=False) + "---\n").encode()
    snapshot = write_repo(hf_home / "hub", repo_id, "dataset", files, commit)
    for config in configs:
        prepare_dataset(hf_home / "datasets", repo_id, config or "default", snapshot, commit)
    return commit


def prepare_dataset(cache_dir: Path, repo_id: str, config: str, snapshot: Path, commit: str) -> None:
    """What the first online `load_dataset(repo_id, config)` leaves in the datasets cache: the module
    built from the repository's README and shards, its builder named after the repository and
    keyed by the commit, `download_and_prepare`. The builder refuses local shards under a `repo_id`
    (it checks for hf:// paths), so it runs without one and its folder `<name>/` is then moved to
    `<org>___<name>/`, the folder a builder with that `repo_id` writes (file names do not change)."""
    import shutil

    from datasets.load import LocalDatasetModuleFactory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    module = LocalDatasetModuleFactory(str(snapshot)).get_module()
    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    builder = get_dataset_builder_class(module, dataset_name=name)(
        cache_dir=str(cache_dir),
        dataset_name=name,
        config_name=config,
        hash=commit,
        base_path=str(snapshot),
        info=(module.dataset_infos or {}).get(config),
    )
    builder.download_and_prepare()
    if "/" in repo_id:
        target = cache_dir / f"{repo_id.split('/')[0]}___{name}" / config
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(cache_dir / name / config), str(target))
        shutil.rmtree(cache_dir / name)


def write_jsonl_gz(hub: Path, repo_id: str, files: dict[str, list[dict]], commit: str) -> None:
    """A dataset repository of gzip JSON-lines shards (C4's form), hub cache only."""
    import gzip

    blobs = {
        path: gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0)
        for path, rows in files.items()
    }
    write_repo(hub, repo_id, "dataset", blobs, commit)
