"""The ``hf`` backend: a transformers model in this process, batched with left padding and the chat template."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models.hf_loading import load_causal_lm, render_chat
from refuseu.auditor.registry import require


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        self.lm, self.tokenizer, self.info = load_causal_lm(model, device=self.options.device, dtype=self.options.dtype,
                                                            trust_remote_code=self.options.trust_remote_code)
        self._torch = require("torch")

    @property
    def batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return 64 if self.info["device"].startswith("cuda") else 16

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    async def generate(self, batch: list[GenRequest]) -> list[Generation]:
        return await asyncio.to_thread(self.generate_sync, batch)

    def generate_sync(self, batch: list[GenRequest]) -> list[Generation]:
        if not batch:
            return []
        torch = self._torch
        params = batch[0].params
        if any(r.params != params for r in batch):
            raise RefuseuError("one hf batch must share its decoding parameters")
        texts = [render_chat(self.tokenizer, r.chat()) for r in batch]
        # Longest first inside the batch too; the order is restored below.
        order = sorted(range(len(batch)), key=lambda i: -len(texts[i]))
        enc = self.tokenizer(
            [texts[i] for i in order], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.lm.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs)
        elapsed = time.perf_counter() - start
        new = out[:, enc["input_ids"].shape[1]:]
        eos_ids = self._eos_ids()
        results: list[Generation | None] = [None] * len(batch)
        for row, i in enumerate(order):
            tokens = new[row].tolist()
            n = len(tokens)
            finish = "length"
            for j, tok in enumerate(tokens):
                if tok in eos_ids:
                    n, finish = j, "stop"
                    break
            text = self.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
            results[i] = Generation(batch[i].id, text, finish_reason=finish, n_tokens=n, latency_s=elapsed / len(batch))
        return [g for g in results if g is not None]

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.lm.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list):
                ids.update(source)
        if self.tokenizer.pad_token_id is not None:
            ids.add(self.tokenizer.pad_token_id)
        return ids

    async def aclose(self) -> None:
        self.lm = None
