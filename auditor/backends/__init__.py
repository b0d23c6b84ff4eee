"""Backends, registered lazily as "name": "module:Class" so heavy imports happen only when used. Packages add
their own through the entry point group ``refuseu.backends``."""

from __future__ import annotations

import dataclasses
from typing import Any

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest

GROUP = "refuseu.backends"
BACKENDS: dict[str, str] = {
    "hf": "refuseu.auditor.backends.hf:HFBackend",
    "fake": "refuseu.auditor.backends.fake:FakeBackend",
    "openai": "refuseu.auditor.backends.openai_chat:OpenAIBackend",
    "anthropic": "refuseu.auditor.backends.anthropic_messages:AnthropicBackend",
    "rest": "refuseu.auditor.backends.rest:RestBackend",
    "vllm": "refuseu.auditor.backends.vllm:VLLMBackend",
}


def backend_class(name: str) -> type[Backend]:
    from refuseu.auditor.registry import lookup

    return lookup(BACKENDS, name, "backend", GROUP)  # type: ignore[no-any-return]


def get_backend(name: str, model: str, options: BackendOptions | None = None) -> Backend:
    return backend_class(name)(model, options)


def options_from(config: Any, cls: type[Backend], pairs: dict[str, Any] | None = None) -> BackendOptions:
    """BackendOptions for ``cls`` from a config object holding the shared fields (a ModelConfig, BatchConfig,
    HttpConfig mix): the backend's own ``Options`` are filled from the config's fields of the same names, then
    from ``pairs`` (--backend-option K=V)."""
    from refuseu.auditor.options import from_mapping

    specific: Any = None
    if cls.Options is not None:
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls.Options) if hasattr(config, f.name)}
        values.update(pairs or {})
        specific = from_mapping(cls.Options, values, f"--backend-option (backend '{cls.name}')")
    headers = config.headers() if hasattr(config, "headers") else {}
    return BackendOptions(
        batch_size=getattr(config, "batch_size", None), device=getattr(config, "device", None),
        dtype=getattr(config, "dtype", None), trust_remote_code=getattr(config, "trust_remote_code", False),
        base_url=getattr(config, "base_url", None), api_key_env=getattr(config, "api_key_env", None),
        concurrency=getattr(config, "concurrency", 16), rpm=getattr(config, "rpm", None),
        timeout=getattr(config, "timeout", 120.0), max_retries=getattr(config, "max_retries", 6), headers=headers,
        backoff_base_s=getattr(config, "backoff_base_s", 1.0), backend=specific)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "DecodingParams", "GenRequest", "Generation", "backend_class",
           "get_backend", "options_from"]
