"""The one generation service. A backend implements ``generate(batch)``; this wrapper owns everything around
it, for every caller (the audit runner, the model judges and refuseu-fix): cutting requests into batches of
the backend's size (longest prompts first, to cut padding and surface out-of-memory early), keeping up to
``backend.max_concurrency`` batches in flight, handing each finished answer to the caller as soon as it
exists (so the runner can store it), progress, and the backend's lifetime.

Whoever opens a service closes it; a service lent to a run (``run_audit(..., service=...)``) outlives it, so
one loaded model can serve several runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.progress import Progress

Answers = Callable[[list[tuple[int, Generation]]], None]  # (index into the requests, answer)


class GenerationService:
    def __init__(self, backend: Backend) -> None:
        self.backend: Backend | None = backend

    @classmethod
    def open(cls, name: str, model: str, options: BackendOptions | None = None) -> GenerationService:
        from refuseu.auditor.backends import get_backend

        return cls(get_backend(name, model, options))

    @property
    def name(self) -> str:
        return self._live().name

    def describe(self) -> dict[str, Any]:
        return self._live().describe()

    def _live(self) -> Backend:
        if self.backend is None:
            raise RefuseuError("the generation service is closed")
        return self.backend

    async def stream(self, requests: Sequence[GenRequest], on_answers: Answers, progress: Progress | None = None,
                     stage: str = "generate", longest_first: bool = True) -> None:
        """Answer every request; ``on_answers`` receives each batch's answers (or, from a streaming backend,
        each group of finished answers) as soon as they exist. A backend that answers a different number of
        requests than it was given is an error: a silently missing answer would look like a smaller run."""
        backend = self._live()
        size = max(1, backend.batch_size)
        order = list(range(len(requests)))
        if longest_first and len(requests) > size:  # within one batch the order does not change the padding
            order.sort(key=lambda i: -sum(len(c) for _, c in requests[i].messages))
        batches = [order[i:i + size] for i in range(0, len(order), size)]
        sem = asyncio.Semaphore(max(1, backend.max_concurrency))
        done = 0
        streaming = getattr(backend, "generate_stream", None)  # optional hook (vllm): answers as they finish

        def deliver(part: list[tuple[int, Generation]]) -> None:
            nonlocal done
            on_answers(part)
            done += len(part)
            if progress:
                progress(stage, done, len(requests))

        async def run(idx: list[int]) -> None:
            batch = [requests[i] for i in idx]
            async with sem:
                if streaming is not None:
                    answered = 0
                    async for part in streaming(batch):
                        deliver([(idx[j], g) for j, g in part])
                        answered += len(part)
                    if answered != len(batch):
                        raise RefuseuError(f"backend '{backend.name}' answered {answered} of {len(batch)} requests")
                    return
                gens = await backend.generate(batch)
            if len(gens) != len(batch):
                raise RefuseuError(f"backend '{backend.name}' returned {len(gens)} answers for {len(batch)} requests")
            deliver(list(zip(idx, gens)))

        tasks = [asyncio.create_task(run(b)) for b in batches]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def generate(self, requests: Sequence[GenRequest], progress: Progress | None = None,
                       stage: str = "generate", longest_first: bool = True) -> list[Generation]:
        """Every answer, in the order of ``requests``."""
        out: list[Generation | None] = [None] * len(requests)

        def keep(part: list[tuple[int, Generation]]) -> None:
            for i, g in part:
                out[i] = g

        await self.stream(requests, keep, progress, stage, longest_first)
        return [g for g in out if g is not None]

    async def aclose(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            await backend.aclose()

    async def __aenter__(self) -> GenerationService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
