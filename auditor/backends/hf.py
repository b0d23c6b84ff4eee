"""The ``hf`` backend: a transformers model in this process, batched with left padding and the chat template."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models import materialize, resolve_model
from refuseu.auditor.registry import require


def pick_device_dtype(device: str | None, dtype: str | None) -> tuple[str, Any]:
    """bf16 on a GPU, fp32 on a CPU, unless the user said otherwise."""
    torch = require("torch")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def quiet_transformers(transformers: Any) -> None:
    """Our own progress bars speak for the run; transformers' per-tensor bars and warnings are noise."""
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_causal_lm(model: str, options: BackendOptions) -> tuple[Any, Any, dict[str, Any]]:
    """Resolve and load a model + tokenizer, with one clear error line on failure."""
    transformers = require("transformers")
    quiet_transformers(transformers)
    resolved = resolve_model(model)
    if resolved.kind == "adapter":
        return load_adapter(resolved.path, options)
    path = materialize(resolved)
    device, dtype = pick_device_dtype(options.device, options.dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=options.trust_remote_code)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=options.trust_remote_code
        )
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "the Hugging Face hub" if resolved.kind == "hub" else path
        raise RefuseuError(
            f"could not load model '{model}' from {where}: {first}. Offline? Download it first "
            "(huggingface-cli download) and pass the local folder."
        ) from None
    lm.to(device)
    lm.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    info = {
        "resolved_from": resolved.kind,
        "source": resolved.source,
        "path": path,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "architecture": type(lm).__name__,
        "n_parameters": sum(p.numel() for p in lm.parameters()),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    return lm, tokenizer, info


def load_adapter(adapter_dir: str, options: BackendOptions) -> tuple[Any, Any, dict[str, Any]]:
    """A peft adapter folder: load its base model (any MODEL form, read from adapter_config.json), apply the
    adapter and merge it in memory, so generation runs at the base model's speed."""
    import json
    from pathlib import Path

    peft = require("peft")
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    try:
        base = json.loads(cfg_path.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (KeyError, json.JSONDecodeError) as exc:
        raise RefuseuError(f"{cfg_path}: no usable 'base_model_name_or_path' ({exc})") from None
    if not base:
        raise RefuseuError(f"{cfg_path}: field 'base_model_name_or_path' is empty; cannot find the base model")
    lm, tokenizer, info = load_causal_lm(str(base), options)
    lm = peft.PeftModel.from_pretrained(lm, adapter_dir).merge_and_unload()
    lm.eval()
    info = {**info, "adapter": str(Path(adapter_dir).resolve()), "base_model": str(base), "resolved_from": "adapter"}
    return lm, tokenizer, info


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    # No template: a plain transcript, so base models can still be audited.
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        self.lm, self.tokenizer, self.info = load_causal_lm(model, self.options)
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
