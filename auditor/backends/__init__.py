"""Backends, registered lazily as "name": "module:Class" so heavy imports happen only when used."""

from __future__ import annotations

from refuseu.auditor.backends.base import Backend, BackendOptions, DecodingParams, Generation, GenRequest

BACKENDS: dict[str, str] = {
    "hf": "refuseu.auditor.backends.hf:HFBackend",
    "fake": "refuseu.auditor.backends.fake:FakeBackend",
    "openai": "refuseu.auditor.backends.openai_chat:OpenAIBackend",
    "anthropic": "refuseu.auditor.backends.anthropic_messages:AnthropicBackend",
    "rest": "refuseu.auditor.backends.rest:RestBackend",
    "vllm": "refuseu.auditor.backends.vllm:VLLMBackend",
}


def get_backend(name: str, model: str, options: BackendOptions | None = None) -> Backend:
    from refuseu.auditor.registry import lookup

    cls = lookup(BACKENDS, name, "backend")
    return cls(model, options)  # type: ignore[no-any-return]


__all__ = ["BACKENDS", "Backend", "BackendOptions", "DecodingParams", "GenRequest", "Generation", "get_backend"]
