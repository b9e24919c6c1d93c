"""Faults other than SIGKILL: SIGTERM/SIGHUP/Ctrl-C, a read-only or full disk, GPU out of memory, a
model too big for RAM, and a second writer."""

import errno
import os
import signal
import subprocess
import sys

import pytest
import torch

from depthprune.core import engine as engine_module
from depthprune.core import loading, runs
from depthprune.core.errors import UserError
from depthprune.core.evaluate import evaluate
from depthprune.core.loading import load_model
from depthprune.core.runs import list_runs
from depthprune.core.surgery import export_pruned
from depthprune.pipeline.prune import PruneConfig, resume, start

from .test_kill_points import CONFIG  # the same small greedy search the kill-point tests interrupt

ARGS = [
    "prune",
    "--model",
    "tiny:llama:8",
    "--searcher",
    "greedy",
    "--k",
    "3",
    "--seed",
    "3",
    "--calib",
    "demo",
    "--calib-samples",
    "2",
    "--calib-seq-len",
    "64",
    "--batch-size",
    "1",
    "--json",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return start(CONFIG, tmp_path_factory.mktemp("reference"))[1]


@pytest.mark.parametrize("sig,kept", [("TERM", 5), ("HUP", 5), ("INT", 4)])
def test_a_signal_stops_between_candidates_and_the_run_resumes_to_the_same_result(
    sig, kept, reference, tmp_path, single_thread_env
):
    """SIGTERM/SIGHUP arriving during the 5th candidate: it is recorded, then the search stops; Ctrl-C
    (SIGINT) stops at once, dropping only the candidate in flight."""
    env = single_thread_env | {"DEPTHPRUNE_FAULT": f"evaluate:5:{sig}"}
    proc = subprocess.run(
        [sys.executable, "-m", "depthprune.cli", *ARGS, "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        # a shell's background job inherits SIGINT ignored, and Python then keeps it ignored: default it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "depthprune prune --resume" in proc.stderr
    (run,) = list_runs(tmp_path)
    assert run.state == "stopped" and run.events()[-1].kind == "stopped"
    stored = [e for e in run.events() if e.kind == "candidate"]
    assert len(stored) == kept
    run, result = resume(run.id, tmp_path)
    assert (result["removed"], result["value"]) == (reference["removed"], pytest.approx(reference["value"], rel=1e-6))
    assert run.state == "finished"


def test_a_runs_directory_the_os_refuses_is_refused_before_the_search(tmp_path):
    """A real refusal from the OS that holds for root too (chmod does not stop root): the runs
    directory would have to live under a regular file. Read-only and full disks: the probe test below."""
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"'.*file/runs' \(from --runs-dir\) is not writable \(Not a directory\)"):
        start(CONFIG, tmp_path / "file" / "runs")


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_refused_probe_stops_before_the_model_is_loaded(code, tmp_path, monkeypatch):
    def refuse(fd):
        raise OSError(code, os.strerror(code))

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded although the runs directory is not writable")

    monkeypatch.setattr(runs.os, "fsync", refuse)
    monkeypatch.setattr("depthprune.pipeline.prune.load_model", never)
    with pytest.raises(UserError, match=rf"\(from --runs-dir\) is not writable \({os.strerror(code)}\)"):
        start(CONFIG, tmp_path / "runs")


def test_disk_full_mid_search_stops_with_one_line_and_keeps_everything_written(
    reference, tmp_path, monkeypatch, capsys
):
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):  # the 12th durable write fails as on a full disk (after half of it reached the file)
        calls["n"] += 1
        if calls["n"] == 12:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(runs.os, "fsync", fsync)
    monkeypatch.setattr(sys, "argv", ["depthprune", *ARGS, "--runs-dir", str(tmp_path)])
    from depthprune import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert "everything written before is kept" in err[0] and "--resume" in err[0]
    monkeypatch.setattr(runs.os, "fsync", real_fsync)
    (run,) = list_runs(tmp_path)
    text = (run.path / "events.jsonl").read_text()
    assert text.endswith("\n") and run.events(), "the failed write left a partial line"
    _, result = resume(run.id, tmp_path)
    assert result["removed"] == reference["removed"]


def test_gpu_out_of_memory_halves_the_batch_down_to_one_with_the_same_scores(monkeypatch):
    lm = load_model("tiny:llama", device="cpu")
    clean = evaluate(lm, ["demo-text", "demo-mc"], [2], limit=6, seq_len=64, batch_size=8)
    sizes = []
    real = engine_module.Engine.final_hidden

    def small_gpu(self, input_ids, *args, **kwargs):
        sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(engine_module.Engine, "final_hidden", small_gpu)
    faulted = evaluate(lm, ["demo-text", "demo-mc"], [2], limit=6, seq_len=64, batch_size=8)
    assert faulted["tasks"] == clean["tasks"]
    assert {8, 4, 2} <= set(sizes) and max(sizes[-3:]) <= 2


def test_gpu_out_of_memory_even_at_batch_size_one_is_one_clear_line(monkeypatch):
    lm = load_model("tiny:llama", device="cpu")

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine_module.Engine, "final_hidden", no_memory)
    with pytest.raises(UserError) as error:
        evaluate(lm, ["demo-text"], [], limit=2, seq_len=64, batch_size=4)
    assert "out of GPU memory scoring demo-text even at batch size 1 (from --batch-size 4)" in str(error.value)
    assert "\n" not in str(error.value)


def test_objective_capture_out_of_memory_halves_the_batch_with_the_same_result(reference, tmp_path, monkeypatch):
    real = engine_module.Engine.capture

    def small_gpu(self, input_ids, *args, **kwargs):
        if input_ids.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(engine_module.Engine, "capture", small_gpu)
    config = PruneConfig(**{**CONFIG.__dict__, "batch_size": 4})
    _, result = start(config, tmp_path)
    assert (result["removed"], result["value"]) == (reference["removed"], pytest.approx(reference["value"], rel=1e-6))


def test_a_model_too_big_for_ram_is_refused_before_loading(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    export_pruned(load_model("tiny:llama", device="cpu"), (5,), model_dir)
    need = loading.weight_bytes(model_dir, torch.float32)
    params = sum(p.numel() for p in load_model(str(model_dir), device="cpu").model.parameters())
    assert need == params * 4, "the estimate is the parameter count times the dtype's bytes"
    monkeypatch.setattr(loading, "available_memory", lambda: need - 1)
    with pytest.raises(UserError, match=r"needs about .* GiB of memory in float32, but only .* GiB is available"):
        load_model(str(model_dir), device="cpu")


def test_a_second_writer_process_is_refused_naming_the_holders_pid(tmp_path, single_thread_env):
    config = PruneConfig(**{**CONFIG.__dict__, "k": 1})
    run, _ = start(config, tmp_path)
    (run.path / "result.json").unlink()
    with run.writing():
        assert run.state == "running" and run.writer_pid() == os.getpid()
        proc = subprocess.run(
            [sys.executable, "-m", "depthprune.cli", "prune", "--resume", run.id, "--runs-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=single_thread_env,
        )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"run {run.id} is being written by process {os.getpid()}" in lines[0]
    assert run.writer_pid() is None and run.state == "incomplete"


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 24 KiB tmpfs (root only); skipped, with the reason, where mounting is refused."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_mid_search_is_one_line_no_partial_line_and_resumable(
    small_filesystem, tmp_path, monkeypatch, capsys, tally
):
    """A beam search on a 24 KiB filesystem fills it: one `error:` line naming the file and ENOSPC, exit
    2, no traceback, every file on it ends with a complete line; moved to a roomy disk the run resumes
    to the result of an uninterrupted search."""
    from ..test_cli import run_cli

    args = [
        "prune",
        "--model",
        "tiny:llama:8",
        "--searcher",
        "beam",
        "--k",
        "3",
        "--calib",
        "demo",
        "--calib-samples",
        "1",
        "--calib-seq-len",
        "32",
        "--batch-size",
        "1",
        "--json",
    ]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--runs-dir", str(small_filesystem / "runs"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], err
    assert "Traceback" not in err and "everything written before is kept" in lines[0]
    for path in (small_filesystem / "runs").rglob("*.jsonl"):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path} ends with a partial line"
    (run,) = list_runs(small_filesystem / "runs")
    assert run.events(), "nothing was kept"
    import shutil

    roomy = tmp_path / "roomy"
    shutil.copytree(small_filesystem / "runs", roomy)
    _, result = resume(run.id, roomy)
    reference = start(
        PruneConfig(
            model="tiny:llama:8",
            objective="ppl",
            searcher="beam",
            k=3,
            calib="demo",
            calib_samples=1,
            calib_seq_len=32,
            batch_size=1,
        ),
        tmp_path / "reference",
    )[1]
    assert (result["removed"], result["value"], result["evaluations"]) == (
        reference["removed"],
        pytest.approx(reference["value"], rel=1e-6),
        reference["evaluations"],
    )
    tally["real faults"] += 1


def test_append_line_on_a_real_full_disk_keeps_the_file_at_its_last_complete_line(small_filesystem, tally):
    """The write itself hits ENOSPC (no simulated fsync): a UserError, never an OSError from the cleanup,
    and the file is cut back to the previous line."""
    path = small_filesystem / "lines.jsonl"
    line = "x" * 1000
    with pytest.raises(UserError, match="No space left on device"):
        for _ in range(100):
            runs.append_line(path, line)
    data = path.read_bytes()
    assert data.endswith(b"\n") and set(data.split(b"\n")[:-1]) == {line.encode()}
    tally["real faults"] += 1
