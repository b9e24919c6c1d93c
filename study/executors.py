"""Where a study's work units run. A job is (function, args) with plain, picklable arguments; `run`
yields results as jobs complete, and an error in any job is raised in the caller.

* `local` — in this process (one worker), or a pool of worker processes: one per GPU (each sees one
  device through CUDA_VISIBLE_DEVICES) or, on CPU, `workers` processes sharing the cores;
* `ray` — Ray tasks (one GPU each where the cluster has GPUs) against a runs directory every node
  can reach; Ray is an optional extra (`pip install depthprune[ray]`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ..core.errors import UserError

Job = tuple[Callable, tuple]


def _gpu_count(device: str | None) -> int:
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count() if device in (None, "cuda") else 0


class InProcess:
    def run(self, jobs: Iterable[Job]) -> Iterator:
        for fn, args in jobs:
            yield fn(*args)

    def close(self) -> None:
        pass


def _init_worker(slots, threads: int) -> None:
    """Pin a fresh worker to its GPU (if any) and its share of the CPU threads."""
    slot = slots.get()
    if slot is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
    import torch

    torch.set_num_threads(threads)


class ProcessPool:
    def __init__(self, workers: int, gpus: int):
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        slots = ctx.Queue()
        for i in range(workers):
            slots.put(i % gpus if gpus else None)
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(slots, threads))

    def run(self, jobs: Iterable[Job]) -> Iterator:
        pending = {self.pool.submit(fn, *args) for fn, args in jobs}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayTasks:
    def __init__(self, address: str, gpus: int):
        try:
            import ray
        except ImportError:
            raise UserError("executor 'ray' needs Ray: pip install 'depthprune[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
        self.gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and gpus else 0

    def run(self, jobs: Iterable[Job]) -> Iterator:
        remote = {}
        pending = []
        for fn, args in jobs:
            if fn not in remote:
                remote[fn] = self.ray.remote(num_gpus=self.gpus, num_cpus=1, max_retries=0)(fn)
            pending.append(remote[fn].remote(*args))
        while pending:
            finished, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(finished[0])

    def close(self) -> None:
        pass  # a cluster outlives the study; a local one ends with this process


def make_executor(settings: dict, device: str | None):
    """The executor a study's [executor] table asks for (local: one worker per GPU, else `workers` or 1)."""
    gpus = _gpu_count(device)
    if settings["kind"] == "ray":
        return RayTasks(settings.get("address") or "", gpus)
    workers = settings.get("workers") or max(gpus, 1)
    return InProcess() if workers == 1 else ProcessPool(workers, gpus)
