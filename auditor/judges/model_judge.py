"""Judges that ask a model: the shared plumbing. Any registered Backend runs them (``hf`` in-process, ``vllm``,
``openai`` for any OpenAI-compatible URL), with the same MODEL resolution as audited models. A subclass says
how to ask (``messages``) and how to read the answer (``parse``); an answer it cannot read becomes an
``unjudgeable`` verdict that quotes the output, never a silent drop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.judges.base import UNJUDGEABLE, Judge, JudgeItem, Verdict

Messages = tuple[tuple[str, str], ...]
MAX_RESPONSE_CHARS = 6000  # a judge prompt must fit the judge's context; the start of an answer decides it


def quote(text: str, n: int = 120) -> str:
    """A short, one-line excerpt of a judge model's output for a verdict's reason."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[:n] + "...")


def clip(text: str) -> str:
    return text if len(text) <= MAX_RESPONSE_CHARS else text[:MAX_RESPONSE_CHARS] + " [...]"


class ModelJudge(Judge):
    """A judge backed by a model. Options mirror the audit's own model flags."""

    default_model: str = ""
    max_new_tokens: int = 64

    def __init__(
        self,
        model: str | None = None,
        backend: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        concurrency: int = 8,
        judge_id: str | None = None,
        backend_instance: Backend | None = None,
    ) -> None:
        self.model = model or self.default_model
        if not self.model:
            raise RefuseuError(f"judge '{self.id}' needs a model: refuseu-audit judge RUN_DIR --judge {self.id} --model MODEL")
        self.backend_name = backend or ("openai" if base_url else "hf")
        self.options = BackendOptions(batch_size=batch_size, device=device, dtype=dtype, base_url=base_url,
                                      api_key_env=api_key_env, concurrency=concurrency)
        if max_new_tokens:
            self.max_new_tokens = max_new_tokens
        if judge_id:
            self.id = judge_id
        self._backend = backend_instance

    # -- what a subclass says
    def messages(self, item: JudgeItem) -> Messages:
        raise NotImplementedError

    def parse(self, item: JudgeItem, output: str) -> Verdict:
        raise NotImplementedError

    # -- the plumbing
    def backend(self) -> Backend:
        if self._backend is None:
            from refuseu.auditor.backends import get_backend

            self._backend = get_backend(self.backend_name, self.model, self.options)
        return self._backend

    def spec(self) -> dict[str, Any]:
        """What identifies this judge in a run's manifest (no secrets)."""
        out = {"judge": self.id, "backend": self.backend_name, "model": self.model}
        if self.options.base_url:
            out["base_url"] = self.options.base_url
        return out

    @property
    def batch_size(self) -> int:
        return max(1, self.options.batch_size or 64)  # one chunk of the store; the backend batches within it

    def requests(self, items: Sequence[JudgeItem]) -> list[GenRequest]:
        params = DecodingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        return [GenRequest(f"{it.record_id}:{self.id}", it.case.id, it.case.lang, self.messages(it), params)
                for it in items]

    async def generate(self, items: Sequence[JudgeItem]) -> list[Generation]:
        backend = self.backend()
        reqs = self.requests(items)
        size = max(1, backend.batch_size)
        chunks = [reqs[i:i + size] for i in range(0, len(reqs), size)]
        sem = asyncio.Semaphore(max(1, backend.max_concurrency))

        async def run(chunk: list[GenRequest]) -> list[Generation]:
            async with sem:
                gens = await backend.generate(chunk)
            if len(gens) != len(chunk):
                raise RefuseuError(f"judge backend returned {len(gens)} answers for {len(chunk)} requests")
            return gens

        results = await asyncio.gather(*(run(c) for c in chunks))
        return [g for chunk in results for g in chunk]

    async def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        if not items:
            return []
        from dataclasses import replace

        from refuseu.auditor.judges.langid import detect_languages

        out: list[Verdict] = []
        gens = await self.generate(items)
        langs = detect_languages([it.response for it in items])  # the language is ours to tell, not the model's
        for item, gen, lang in zip(items, gens, langs):
            if not item.response.strip():
                verdict = Verdict(item.record_id, self.id, UNJUDGEABLE, None, None, "empty response")
            elif gen.error is not None or gen.text is None:
                verdict = Verdict(item.record_id, self.id, UNJUDGEABLE, None, None,
                                  f"judge model error: {(gen.error or 'no text')[:200]}")
            else:
                verdict = self.parse(item, gen.text)
            out.append(replace(verdict, response_lang=verdict.response_lang or lang))
        return out

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()
            self._backend = None
