"""The ``openai`` backend: Chat Completions on any OpenAI-compatible server (OpenAI, vLLM, TGI, Ollama,
LM Studio, llama.cpp, ``transformers serve``). A pure request builder and a pure response parser; the
shared HTTP wrapper does the rest."""

from __future__ import annotations

from typing import Any

from refuseu.auditor.backends.base import DecodingParams, GenRequest
from refuseu.auditor.backends.http import HTTPBackend, HTTPRequest, MalformedResponse, Parsed, host_of

OPENAI_BASE_URL = "https://api.openai.com/v1"


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def build_chat_request(model: str, req: GenRequest, base_url: str) -> HTTPRequest:
    """The Chat Completions body for one request. Pure: same input, same output."""
    params: DecodingParams = req.params
    body: dict[str, Any] = {"model": model, "messages": req.chat(), "stream": False,
                            "temperature": params.temperature, "top_p": params.top_p}
    # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens); compatible
    # servers (vLLM, TGI, Ollama, llama.cpp, transformers serve) all read max_tokens.
    if host_of(base_url) == "api.openai.com":
        body["max_completion_tokens"] = params.max_new_tokens
    else:
        body["max_tokens"] = params.max_new_tokens
    if params.seed is not None:
        body["seed"] = params.seed
    return HTTPRequest(chat_url(base_url), body)


def parse_chat_response(data: Any) -> Parsed:
    """The answer of a Chat Completions body, or MalformedResponse naming what is missing."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    if "error" in data and "choices" not in data:
        raise MalformedResponse(f"error object in a 2xx body: {str(data['error'])[:200]}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("no 'choices' in the body")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MalformedResponse("no 'choices.0.message' in the body")
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        # OpenAI puts a safety refusal in message.refusal with content null; a content filter stops with
        # finish_reason content_filter and no text. Both are answers, not transport failures.
        content = message.get("refusal")
        if content is None and choice.get("finish_reason") is None:
            raise MalformedResponse("'choices.0.message.content' is null and no finish_reason")
    if content is not None and not isinstance(content, str):
        raise MalformedResponse(f"'choices.0.message.content' is {type(content).__name__}, not text")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    n_tokens = usage.get("completion_tokens")
    return Parsed(content or "", choice.get("finish_reason"), n_tokens if isinstance(n_tokens, int) else None)


class OpenAIBackend(HTTPBackend):
    name = "openai"
    default_base_url = OPENAI_BASE_URL
    default_key_env = "OPENAI_API_KEY"

    def key_required(self) -> bool:
        return host_of(self.base_url) == "api.openai.com"

    def build_request(self, req: GenRequest) -> HTTPRequest:
        return build_chat_request(self.model, req, self.base_url)

    def parse_response(self, data: Any) -> Parsed:
        return parse_chat_response(data)
