"""The ``vllm`` backend: the offline ``vllm.LLM`` engine in this process.

Every pending prompt goes to vLLM in one ``generate`` call (the runner's batch is "all pending" unless
``--batch-size`` says otherwise), because vLLM schedules the batch itself with continuous batching and
paged attention: handing it everything keeps the GPU full until the last answer. The cost: the runner
stores answers when a call returns, so a run killed mid-call loses that call's answers (a rerun redoes
only those). ``--batch-size 2000`` bounds the loss for a few percent of throughput.

vLLM is imported inside the constructor only, so ``import refuseu.auditor`` never imports it. Judge models
(Llama Guard, PolyGuard, Qwen3Guard) run through the same class; ``aclose()`` tears the engine down and
frees the GPU, so two guards can run one after the other on one card.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models import materialize, resolve_model
from refuseu.auditor.registry import require

ALL_AT_ONCE = 1_000_000  # "every pending prompt in one call": no audit is this big


def sampling_kwargs(params: DecodingParams) -> dict[str, Any]:
    """Our decoding flags as ``vllm.SamplingParams`` keyword arguments."""
    out: dict[str, Any] = {"n": 1, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                           "top_p": params.top_p if params.temperature > 0 else 1.0}
    if params.seed is not None:
        out["seed"] = params.seed
    return out


def engine_kwargs(path: str, options: BackendOptions, *, lora_rank: int | None = None) -> dict[str, Any]:
    """Arguments for ``vllm.LLM``: the model folder plus the engine sizing flags from ``BackendOptions.extra``."""
    extra = options.extra
    out: dict[str, Any] = {
        "model": path,
        "tokenizer": path,
        "trust_remote_code": options.trust_remote_code,
        "tensor_parallel_size": int(extra.get("tensor_parallel_size") or 1),
        "gpu_memory_utilization": float(extra.get("gpu_memory_utilization") or 0.9),
        "dtype": options.dtype or "auto",
        "seed": 0,
    }
    if extra.get("max_model_len"):
        out["max_model_len"] = int(extra["max_model_len"])
    if lora_rank is not None:
        out.update(enable_lora=True, max_lora_rank=max(8, lora_rank), max_loras=1)
    # Anything under extra["vllm_engine_args"] (a --config file mapping) goes to the engine as is.
    out.update(extra.get("vllm_engine_args") or {})
    return out


def parse_output(request: GenRequest, output: Any, latency_s: float) -> Generation:
    """One ``vllm.RequestOutput`` as a Generation. An aborted or empty request is an error, not an answer."""
    if not getattr(output, "outputs", None):
        return Generation(request.id, None, error="vllm: the request returned no output", latency_s=latency_s)
    first = output.outputs[0]
    finish = getattr(first, "finish_reason", None)
    if finish == "abort":
        return Generation(request.id, None, error="vllm: request aborted", latency_s=latency_s)
    token_ids = getattr(first, "token_ids", None)
    return Generation(request.id, str(first.text).strip(), finish_reason=finish,
                      n_tokens=None if token_ids is None else len(token_ids), latency_s=latency_s)


def adapter_base(adapter_dir: str) -> tuple[str, int | None]:
    """(base model, LoRA rank) of a peft adapter folder (what refuseu-fix writes)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        base = cfg["base_model_name_or_path"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise RefuseuError(f"{cfg_path}: no usable 'base_model_name_or_path' ({exc})") from None
    rank = cfg.get("r")
    return str(base), int(rank) if isinstance(rank, int) else None


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        vllm = require("vllm")
        self.pool: Any = None
        dp = int(self.options.extra.get("data_parallel_size") or 1)
        if dp > 1:  # one engine per replica process (vllm_dp.py); this process only dispatches
            from refuseu.auditor.backends.vllm_dp import DataParallelPool

            tp = int(self.options.extra.get("tensor_parallel_size") or 1)
            self.pool = DataParallelPool(model, self.options, dp, tp)
            self.llm = None
            self.info = {**self.pool.infos[0], "data_parallel_size": dp,
                         "replicas": [i.get("cuda_visible_devices") for i in self.pool.infos]}
            return
        self._vllm = vllm
        resolved = resolve_model(model)
        self.lora: Any = None
        lora_rank = None
        if resolved.kind == "adapter":  # refuseu-fix's LoRA output: the base model plus the adapter, served by vLLM
            base, lora_rank = adapter_base(resolved.path)
            path = materialize(resolve_model(base))
            self.lora = vllm.lora.request.LoRARequest("refuseu-adapter", 1, resolved.path)
        else:
            path = materialize(resolved)
        self.engine_args = engine_kwargs(path, self.options, lora_rank=lora_rank)
        # Extra SamplingParams fields (bench/gpu_audit.py fixes output lengths with ignore_eos/min_tokens).
        self._sampling_extra: dict[str, Any] = dict(self.options.extra.get("vllm_sampling_args") or {})
        try:
            self.llm: Any = vllm.LLM(**self.engine_args)
        except Exception as exc:  # vLLM raises many types; the user needs the first line and the flags to change
            raise RefuseuError(f"vllm could not start '{model}': {first_line(exc)}. Check --gpu-memory-utilization, "
                               "--max-model-len and --tensor-parallel-size") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self._max_model_len()
        self.info = {"resolved_from": resolved.kind, "path": path, "vllm": getattr(vllm, "__version__", "?"),
                     "max_model_len": self.max_model_len,
                     **{k: self.engine_args[k] for k in ("tensor_parallel_size", "gpu_memory_utilization", "dtype")},
                     "data_parallel_size": 1,
                     "chat_template": bool(getattr(self.tokenizer, "chat_template", None))}
        if self.lora is not None:
            self.info["adapter"] = resolved.path

    def _max_model_len(self) -> int | None:
        for getter in (lambda: self.llm.llm_engine.model_config.max_model_len,
                       lambda: self.llm.model_config.max_model_len):
            try:
                return int(getter())
            except (AttributeError, TypeError):
                continue
        value = self.engine_args.get("max_model_len")
        return int(value) if value else None

    @property
    def batch_size(self) -> int:
        return self.options.batch_size or ALL_AT_ONCE

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    async def generate(self, batch: list[GenRequest]) -> list[Generation]:
        return await asyncio.to_thread(self.generate_sync, batch)

    def render(self, request: GenRequest) -> list[int]:
        from refuseu.auditor.backends.hf import render_chat  # pure: no torch import

        text = render_chat(self.tokenizer, request.chat())
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def generate_sync(self, batch: list[GenRequest]) -> list[Generation]:
        if self.pool is not None:
            return self.pool.generate(batch)  # type: ignore[no-any-return]
        if self.llm is None:
            raise RefuseuError("vllm backend used after aclose()")
        results: list[Generation | None] = [None] * len(batch)
        prompts, params, where = [], [], []
        for i, request in enumerate(batch):
            ids = self.render(request)
            if self.max_model_len is not None and len(ids) >= self.max_model_len:
                results[i] = Generation(request.id, None, error=f"vllm: prompt of {len(ids)} tokens does not fit "
                                        f"--max-model-len {self.max_model_len}")
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self._vllm.SamplingParams(**sampling_kwargs(request.params), **self._sampling_extra))
            where.append(i)
        if prompts:
            start = time.perf_counter()
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=sys.stderr.isatty(),
                                            **({"lora_request": self.lora} if self.lora is not None else {}))
            except Exception as exc:  # a dead engine (OOM...) ends the run; what was stored stays for a rerun
                raise RefuseuError(f"vllm generate failed: {first_line(exc)}. Finished records are stored; "
                                   "rerun the same command to resume") from None
            latency = (time.perf_counter() - start) / len(prompts)
            if len(outputs) != len(prompts):
                raise RefuseuError(f"vllm returned {len(outputs)} outputs for {len(prompts)} prompts")
            for i, output in zip(where, outputs):
                results[i] = parse_output(batch[i], output, latency)
        return [g for g in results if g is not None]

    async def aclose(self) -> None:
        """Shut the engine down and give the GPU memory back, so the next model (a guard judge) fits."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await asyncio.to_thread(pool.close)
            return
        llm, self.llm = self.llm, None
        if llm is None:
            return
        shutdown_engine(llm)
        del llm
        gc.collect()
        release_gpu_memory()


def shutdown_engine(llm: Any) -> None:
    """vLLM's engine core runs in its own process in recent versions; stop it explicitly rather than hoping
    the garbage collector does. Each hook is optional because the API moved between versions."""
    for hook in (lambda: llm.llm_engine.engine_core.shutdown(), lambda: llm.shutdown()):
        try:
            hook()
        except Exception:  # noqa: BLE001 - best effort: an engine already gone is fine
            continue
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception:  # noqa: BLE001 - not every version/executor sets these up
        pass


def release_gpu_memory() -> None:
    try:
        import torch
    except ModuleNotFoundError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.synchronize()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
