"""Lazy registries: names map to "module:attr" strings, imported only when used (no import-time side effects)."""

from __future__ import annotations

import importlib
from typing import Any

from refuseu.auditor.errors import MissingExtraError, RefuseuError

# Which pip line brings each third-party module a plugin may need.
EXTRA_FOR_MODULE: dict[str, str] = {
    "torch": 'pip install "refuseu[hf]"',
    "transformers": 'pip install "refuseu[hf]"',
    "accelerate": 'pip install "refuseu[hf]"',
    "gguf": 'pip install "refuseu[hf]"',
    "vllm": 'pip install "refuseu[vllm]"',
    "trl": 'pip install "refuseu[fix]"',
    "peft": 'pip install "refuseu[fix]"',
    "datasets": 'pip install "refuseu[fix]"',
}


def load_object(spec: str) -> Any:
    """Import ``module:attr``. A missing optional dependency becomes a MissingExtraError naming the pip line."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in EXTRA_FOR_MODULE:
            raise MissingExtraError(top, EXTRA_FOR_MODULE[top]) from None
        raise
    return getattr(module, attr)


def require(module: str) -> Any:
    """Import a heavy optional module inside a function, with the pip line on failure."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = (exc.name or module).split(".")[0]
        raise MissingExtraError(top, EXTRA_FOR_MODULE.get(top, f"pip install {top}")) from None


def with_plugins(registry: dict[str, str], group: str | None) -> dict[str, str]:
    """The built-in entries plus those third-party packages register under the entry point ``group``
    (``[project.entry-points."refuseu.backends"] mine = "pkg.module:MyBackend"``). Built-ins win a name
    clash. Entry points are only read when a name is not built in, or when listing."""
    if group is None:
        return registry
    from importlib.metadata import entry_points

    out = dict(registry)
    for ep in entry_points(group=group):
        out.setdefault(ep.name, ep.value)
    return out


def lookup(registry: dict[str, str], name: str, kind: str, group: str | None = None) -> Any:
    if name not in registry:
        registry = with_plugins(registry, group)
    if name not in registry:
        raise RefuseuError(f"unknown {kind} '{name}' (known: {', '.join(sorted(registry))})")
    return load_object(registry[name])
