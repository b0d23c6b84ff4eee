"""The ``anthropic`` backend: the Messages API. A pure request builder and a pure response parser; the
shared HTTP wrapper does the rest."""

from __future__ import annotations

from typing import Any

from refuseu.auditor.backends.base import GenRequest
from refuseu.auditor.backends.http import HTTPBackend, HTTPRequest, MalformedResponse, Parsed, host_of

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/messages"):
        return base
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def build_messages_request(model: str, req: GenRequest, base_url: str) -> HTTPRequest:
    """The Messages body: system prompts go top-level, turns stay in order. Pure."""
    params = req.params
    system = [c for r, c in req.messages if r == "system"] or ([params.system] if params.system else [])
    turns = [{"role": r, "content": c} for r, c in req.messages if r != "system"]
    body: dict[str, Any] = {"model": model, "max_tokens": params.max_new_tokens, "messages": turns,
                            "temperature": params.temperature}
    if system:
        body["system"] = "\n\n".join(system)
    # Newer Claude models reject temperature and top_p together; send top_p only when it means something.
    if params.top_p < 1.0:
        body["top_p"] = params.top_p
    return HTTPRequest(messages_url(base_url), body, {"anthropic-version": ANTHROPIC_VERSION})


def parse_messages_response(data: Any) -> Parsed:
    """The text blocks of a Messages body joined, or MalformedResponse naming what is missing."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    if data.get("type") == "error":
        raise MalformedResponse(f"error object in a 2xx body: {str(data.get('error'))[:200]}")
    content = data.get("content")
    if not isinstance(content, list):
        raise MalformedResponse("no 'content' list in the body")
    text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    n_tokens = usage.get("output_tokens")
    return Parsed(text, data.get("stop_reason"), n_tokens if isinstance(n_tokens, int) else None)


class AnthropicBackend(HTTPBackend):
    name = "anthropic"
    default_base_url = ANTHROPIC_BASE_URL
    default_key_env = "ANTHROPIC_API_KEY"

    def key_required(self) -> bool:
        return host_of(self.base_url) == "api.anthropic.com"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def build_request(self, req: GenRequest) -> HTTPRequest:
        return build_messages_request(self.model, req, self.base_url)

    def parse_response(self, data: Any) -> Parsed:
        return parse_messages_response(data)
