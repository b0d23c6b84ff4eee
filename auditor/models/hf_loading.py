"""Loading local models with transformers: dtype and device, GGUF files (dequantized once into a cached
safetensors folder), LoRA adapter folders, and the chat template. Shared by the hf backend, the model
judges and refuseu-fix; everything heavy is imported inside the functions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models.resolve import ResolvedModel, cache_dir, resolve_model
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


def load_causal_lm(model: str, *, device: str | None = None, dtype: str | None = None,
                   trust_remote_code: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """Resolve and load a model + tokenizer, with one clear error line on failure."""
    transformers = require("transformers")
    quiet_transformers(transformers)
    resolved = resolve_model(model)
    if resolved.kind == "adapter":
        return load_adapter(resolved.path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    path = materialize(resolved)
    device, torch_dtype = pick_device_dtype(device, dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, trust_remote_code=trust_remote_code
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
        "dtype": str(torch_dtype).replace("torch.", ""),
        "architecture": type(lm).__name__,
        "n_parameters": sum(p.numel() for p in lm.parameters()),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    return lm, tokenizer, info


def load_adapter(adapter_dir: str, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """A peft adapter folder: load its base model (any MODEL form, read from adapter_config.json), apply the
    adapter and merge it in memory, so generation runs at the base model's speed."""
    peft = require("peft")
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    try:
        base = json.loads(cfg_path.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (KeyError, json.JSONDecodeError) as exc:
        raise RefuseuError(f"{cfg_path}: no usable 'base_model_name_or_path' ({exc})") from None
    if not base:
        raise RefuseuError(f"{cfg_path}: field 'base_model_name_or_path' is empty; cannot find the base model")
    lm, tokenizer, info = load_causal_lm(str(base), device=device, dtype=dtype, trust_remote_code=trust_remote_code)
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


def materialize(resolved: ResolvedModel) -> str:
    """Return something ``from_pretrained`` can load fast: GGUF files become a cached safetensors folder."""
    if resolved.kind not in ("alias", "gguf"):
        return resolved.path
    gguf = Path(resolved.source)
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{resolved.name}-{key}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return str(target)
    convert_gguf(gguf, target)
    return str(target)


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF file into a plain transformers folder. ``save_pretrained`` refuses a GGUF-loaded
    model, so we rebuild a plain model from its config (without ``quantization_config``) and copy weights."""
    torch = require("torch")
    require("gguf")
    transformers = require("transformers")
    quiet_transformers(transformers)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    plain = type(loaded)(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RefuseuError(f"could not convert {gguf}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if missing:  # tied embeddings
        plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a killed conversion never leaves a half-written cache


