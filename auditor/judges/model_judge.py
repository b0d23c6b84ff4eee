"""Judges that ask a model: the shared plumbing. Any registered Backend runs them (``hf`` in-process, ``vllm``,
``openai`` for any OpenAI-compatible URL), with the same MODEL resolution as audited models. A subclass says
how to ask (``messages``) and how to read the answer (``parse``); an answer it cannot read becomes an
``unjudgeable`` verdict that quotes the output, never a silent drop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest
from refuseu.auditor.backends.service import GenerationService
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.judges.base import UNJUDGEABLE, Judge, JudgeItem, Verdict
from refuseu.auditor.options import opt

Messages = tuple[tuple[str, str], ...]
MAX_RESPONSE_CHARS = 6000  # a judge prompt must fit the judge's context; the start of an answer decides it


def quote(text: str, n: int = 120) -> str:
    """A short, one-line excerpt of a judge model's output for a verdict's reason."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[:n] + "...")


def clip(text: str) -> str:
    return text if len(text) <= MAX_RESPONSE_CHARS else text[:MAX_RESPONSE_CHARS] + " [...]"


@dataclass
class ModelJudgeOptions:
    """Options of every judge that asks a model (guard, llm); they mirror the audit's own model flags."""

    model: str | None = opt(None, "Judge model, resolved like an audited MODEL (alias, folder, .gguf, hub id, or a name on "
                                  "the endpoint).")
    backend: str | None = opt(None, "Backend for the judge model: hf (default), vllm, or openai (the default with base_url).")
    base_url: str | None = opt(None, "OpenAI-compatible endpoint of the judge model.")
    api_key_env: str | None = opt(None, "Environment variable holding the judge endpoint's key.")
    batch_size: int | None = opt(None, "Answers per judge-model call.")
    max_new_tokens: int | None = opt(None, "Tokens the judge model may write per verdict.")
    device: str | None = opt(None, "Device for a local judge model.")
    dtype: str | None = opt(None, "Weights dtype for a local judge model.")
    concurrency: int = opt(8, "Concurrent requests to a judge endpoint.")
    judge_id: str | None = opt(None, "Name of this judge's verdicts (default: the judge's name).")
    backend_instance: object = opt(None, "A ready Backend object (code only: tests, or a model already loaded).", cli=False)


class ModelJudge(Judge):
    """A judge backed by a model, through the one generation service."""

    Options: type = ModelJudgeOptions
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
        backend_instance: object = None,
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
        self._backend: Backend | None = backend_instance  # type: ignore[assignment]
        self._service: GenerationService | None = None

    # -- what a subclass says
    def messages(self, item: JudgeItem) -> Messages:
        raise NotImplementedError

    def parse(self, item: JudgeItem, output: str) -> Verdict:
        raise NotImplementedError

    # -- the plumbing
    def service(self) -> GenerationService:
        if self._service is None:
            if self._backend is None:
                from refuseu.auditor.backends import get_backend

                self._backend = get_backend(self.backend_name, self.model, self.options)
            self._service = GenerationService(self._backend)
        return self._service

    def spec(self) -> dict[str, Any]:
        """What identifies this judge in a run's manifest (no secrets)."""
        out = {"judge": self.id, "backend": self.backend_name, "model": self.model}
        if self.options.base_url:
            out["base_url"] = self.options.base_url
        return out

    @property
    def batch_size(self) -> int:
        return max(1, self.options.batch_size or 64)  # one chunk of the store; the service batches within it

    def requests(self, items: Sequence[JudgeItem]) -> list[GenRequest]:
        params = DecodingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        return [GenRequest(f"{it.record_id}:{self.id}", it.case.id, it.case.lang, self.messages(it), params)
                for it in items]

    async def generate(self, items: Sequence[JudgeItem]) -> list[Generation]:
        # In the store's order: a judge's chunks are small, and answers in order are easier to follow in its logs.
        return await self.service().generate(self.requests(items), stage=f"judge:{self.id}", longest_first=False)

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
        if self._service is not None:
            await self._service.aclose()
        elif self._backend is not None:
            await self._backend.aclose()
        self._service = None
        self._backend = None
