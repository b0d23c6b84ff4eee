"""The ``vllm`` backend: the offline ``vllm.LLM`` engine in this process.

Every pending prompt goes to vLLM at once (the runner's batch is "all pending" unless ``--batch-size``
says otherwise), because vLLM schedules the batch itself with continuous batching and paged attention:
handing it everything keeps the GPU full until the last answer. Answers still reach the store as they
finish: ``generate_stream`` drives the engine (``LLM.enqueue`` + ``llm_engine.step``) and hands the runner
what finished about every second, so a killed run loses only the requests in flight. Older vLLM without
``enqueue`` falls back to one blocking ``LLM.generate`` call, where a kill loses the whole call.

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
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest
from refuseu.auditor.config import VLLMOptions
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models.hf_loading import materialize
from refuseu.auditor.models.resolve import resolve_model
from refuseu.auditor.registry import require

T = TypeVar("T")
ALL_AT_ONCE = 1_000_000  # "every pending prompt in one call": no audit is this big
FLUSH_S = 1.0  # how often finished answers go to the store during one call


def sampling_kwargs(params: DecodingParams) -> dict[str, Any]:
    """Our decoding flags as ``vllm.SamplingParams`` keyword arguments."""
    out: dict[str, Any] = {"n": 1, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                           "top_p": params.top_p if params.temperature > 0 else 1.0}
    if params.seed is not None:
        out["seed"] = params.seed
    return out


def engine_kwargs(path: str, options: BackendOptions, *, lora_rank: int | None = None) -> dict[str, Any]:
    """Arguments for ``vllm.LLM``: the model folder plus the engine sizing of the backend's VLLMOptions."""
    vo: VLLMOptions = options.backend if options.backend is not None else VLLMOptions()
    out: dict[str, Any] = {
        "model": path,
        "tokenizer": path,
        "trust_remote_code": options.trust_remote_code,
        "tensor_parallel_size": vo.tensor_parallel_size,
        "gpu_memory_utilization": vo.gpu_memory_utilization,
        "dtype": options.dtype or "auto",
        "seed": 0,
    }
    if vo.max_model_len:
        out["max_model_len"] = vo.max_model_len
    if lora_rank is not None:
        out.update(enable_lora=True, max_lora_rank=max(8, lora_rank), max_loras=1)
    out.update(vo.engine_args)  # set by code or --config (a judge, a benchmark): passed to the engine as is
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
    Options = VLLMOptions

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        vllm = require("vllm")
        # Every engine call from one thread: vLLM's client sockets are not meant to hop between threads.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm")
        self.pool: Any = None
        self.llm: Any = None
        dp = self.opts.data_parallel_size
        if dp > 1:  # one engine per replica process (vllm_dp.py); this process only dispatches
            from refuseu.auditor.backends.vllm_dp import DataParallelPool

            tp = self.opts.tensor_parallel_size
            self.pool = DataParallelPool(VLLMBackend, model, self.options, dp, tp)
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
            self.lora = require("vllm.lora.request").LoRARequest("refuseu-adapter", 1, resolved.path)
        else:
            path = materialize(resolved)
        self.engine_args = engine_kwargs(path, self.options, lora_rank=lora_rank)
        # Extra SamplingParams fields (bench/gpu_audit.py fixes output lengths with ignore_eos/min_tokens).
        self._sampling_extra: dict[str, Any] = dict(self.opts.sampling_args)
        try:
            self.llm = vllm.LLM(**self.engine_args)
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
        results: list[Generation | None] = [None] * len(batch)
        async for part in self.generate_stream(batch):
            for i, gen in part:
                results[i] = gen
        return [g for g in results if g is not None]

    async def generate_stream(self, batch: list[GenRequest]) -> AsyncIterator[list[tuple[int, Generation]]]:
        """(index in batch, answer) groups as vLLM finishes them: the runner stores each group at once, so a
        killed run loses only the requests still in flight, and the progress bar moves."""
        loop = asyncio.get_running_loop()
        parts = self.iter_generations(batch)
        try:
            while True:
                part = await loop.run_in_executor(self._thread, next, parts, None)
                if part is None:
                    return
                yield part
        finally:  # stopped early (Ctrl-C, an error downstream): abort what vLLM still holds
            await loop.run_in_executor(self._thread, parts.close)

    def generate_sync(self, batch: list[GenRequest]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(batch)
        for part in self.iter_generations(batch):
            for i, gen in part:
                results[i] = gen
        return [g for g in results if g is not None]

    def render(self, request: GenRequest) -> list[int]:
        from refuseu.auditor.models.hf_loading import render_chat  # pure: no torch import

        text = render_chat(self.tokenizer, request.chat())
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def iter_generations(self, batch: list[GenRequest]) -> Generator[list[tuple[int, Generation]], None, None]:
        """Submit the whole batch to the engine, then yield finished answers about every FLUSH_S seconds."""
        if self.pool is not None:
            yield list(enumerate(self.pool.generate(batch)))
            return
        if self.llm is None:
            raise RefuseuError("vllm backend used after aclose()")
        too_long, prompts, params, where = [], [], [], []
        for i, request in enumerate(batch):
            ids = self.render(request)
            if self.max_model_len is not None and len(ids) >= self.max_model_len:
                too_long.append((i, Generation(request.id, None, error=f"vllm: prompt of {len(ids)} tokens does not "
                                               f"fit --max-model-len {self.max_model_len}")))
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self._vllm.SamplingParams(**sampling_kwargs(request.params), **self._sampling_extra))
            where.append(i)
        if too_long:
            yield too_long
        if not prompts:
            return
        lora = {"lora_request": self.lora} if self.lora is not None else {}
        llm: Any = self.llm
        engine: Any = getattr(llm, "llm_engine", None)
        start = time.perf_counter()
        if not hasattr(llm, "enqueue") or not hasattr(engine, "step"):  # older vLLM: one blocking call
            outputs = engine_call(lambda: llm.generate(prompts, params, use_tqdm=sys.stderr.isatty(), **lora))
            if len(outputs) != len(prompts):
                raise RefuseuError(f"vllm returned {len(outputs)} outputs for {len(prompts)} prompts")
            latency = (time.perf_counter() - start) / len(prompts)
            yield [(i, parse_output(batch[i], out, latency)) for i, out in zip(where, outputs)]
            return
        request_ids = engine_call(lambda: llm.enqueue(prompts, params, use_tqdm=False, **lora))
        # enqueue returns vLLM's internal ids ("7-1a2b3c4d"); outputs and abort_request use the external
        # ones ("7"), which LLM numbers without dashes.
        external = [str(rid).rsplit("-", 1)[0] for rid in request_ids]
        index = {rid: where[k] for k, rid in enumerate(external)}
        unfinished = set(index)
        part: list[tuple[int, Generation]] = []
        flushed = time.perf_counter()
        try:
            while unfinished:
                if not engine_call(engine.has_unfinished_requests):
                    raise RefuseuError(f"vllm stopped with {len(unfinished)} request(s) unanswered")
                for out in engine_call(engine.step):
                    rid = str(out.request_id)
                    if getattr(out, "finished", False) and rid in unfinished:
                        unfinished.discard(rid)
                        part.append((index[rid], parse_output(batch[index[rid]], out, time.perf_counter() - start)))
                if part and (not unfinished or time.perf_counter() - flushed >= FLUSH_S):
                    yield part
                    part, flushed = [], time.perf_counter()
        finally:
            if unfinished:  # the consumer stopped early: free the engine's slots and KV cache
                try:
                    engine.abort_request(sorted(unfinished))
                except Exception:  # noqa: BLE001 - best effort on a failing engine
                    pass

    async def aclose(self) -> None:
        """Shut the engine down and give the GPU memory back, so the next model (a guard judge) fits."""
        self._thread.shutdown(wait=True)
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


def engine_call(fn: Callable[[], T]) -> T:
    """Run one engine call; a dead engine (OOM, a crashed worker) becomes one line. What the store already
    holds stays, and a rerun resumes."""
    try:
        return fn()
    except RefuseuError:
        raise
    except Exception as exc:  # vLLM raises many types
        raise RefuseuError(f"vllm generate failed: {first_line(exc)}. Finished records are stored; "
                           "rerun the same command to resume") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
