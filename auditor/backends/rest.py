"""The ``rest`` backend: any in-house endpoint. A jinja2 template renders the JSON request body, a dotted
path (``choices.0.text``) finds the answer in the JSON response, and ``--header K=V`` adds headers.

In the template every ``{{ expression }}`` is inserted as a JSON value (strings quoted and escaped), so a
prompt can never break the body: write ``{"prompt": {{ prompt }}}``, not ``"{{ prompt }}"``. Variables:
model, messages (list of {role, content}), prompt (the last user turn), system, max_tokens (= max_new_tokens),
temperature, top_p, seed, lang, request_id. Without --response-path the whole response body is the answer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.base import BackendOptions, DecodingParams, GenRequest
from refuseu.auditor.backends.http import HTTPBackend, HTTPRequest, MalformedResponse, Parsed
from refuseu.auditor.config import RestOptions
from refuseu.auditor.errors import RefuseuError

SAMPLE = GenRequest("sample-id", "sample", "en", (("user", 'A "quoted" \\ prompt\nwith a newline'),),
                    DecodingParams(system="sys"))


def _json_value(value: Any) -> str:
    from markupsafe import Markup

    if isinstance(value, Markup):  # already JSON from |tojson: do not encode twice
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def load_template(path: str) -> Any:
    """Compile the body template; a syntax error names file:line."""
    import jinja2

    from refuseu.auditor.textfiles import read_text

    source = read_text(path, "--request-template")
    env = jinja2.Environment(finalize=_json_value, undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise RefuseuError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from None


def template_context(model: str, req: GenRequest) -> dict[str, Any]:
    messages = req.chat()
    users = [m["content"] for m in messages if m["role"] == "user"]
    p = req.params
    return {"model": model, "messages": messages, "prompt": users[-1] if users else "",
            "system": p.system, "max_tokens": p.max_new_tokens, "max_new_tokens": p.max_new_tokens,
            "temperature": p.temperature, "top_p": p.top_p, "seed": p.seed, "lang": req.lang,
            "request_id": req.id}


def render_body(template: Any, model: str, req: GenRequest, path: str) -> Any:
    """Render and parse the body. Pure given the compiled template."""
    import jinja2

    try:
        text = template.render(**template_context(model, req))
    except jinja2.UndefinedError as exc:
        raise RefuseuError(f"{path}: {exc.message} (variables: {', '.join(template_context(model, req))})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RefuseuError(f"{path}: the rendered body is not JSON ({exc.msg} at line {exc.lineno}); values are "
                           'inserted as JSON, so write {{ prompt }}, not "{{ prompt }}"') from None


def parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in path.split("."):
        if part == "":
            raise RefuseuError(f"--response-path: empty step in '{path}' (use e.g. choices.0.text)")
        parts.append(int(part) if part.lstrip("-").isdigit() else part)
    return parts


def extract(data: Any, path: list[str | int]) -> Parsed:
    """Follow the path through the JSON body; a missing step is a malformed body (retried)."""
    current = data
    walked: list[str] = []
    for step in path:
        if isinstance(step, int) and isinstance(current, list):
            if not -len(current) <= step < len(current):
                raise MalformedResponse(f"no index {step} at '{'.'.join(walked) or '$'}' (length {len(current)})")
            current = current[step]
        elif isinstance(current, dict) and str(step) in current:
            current = current[str(step)]
        else:
            keys = f" (keys: {', '.join(list(current)[:10])})" if isinstance(current, dict) else ""
            raise MalformedResponse(f"no '{step}' at '{'.'.join(walked) or '$'}'{keys}")
        walked.append(str(step))
    if isinstance(current, str):
        return Parsed(current)
    if current is None or isinstance(current, (dict, list)):
        raise MalformedResponse(f"'{'.'.join(walked)}' is {type(current).__name__}, not text")
    return Parsed(json.dumps(current))


class RestBackend(HTTPBackend):
    name = "rest"
    Options = RestOptions

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        rest = (options.backend if options is not None else None) or RestOptions()
        if not rest.request_template:
            raise RefuseuError("the rest backend needs --request-template FILE.json.j2 (the request body)")
        self.template_path = str(rest.request_template)
        self.template = load_template(self.template_path)
        self.response_path = parse_path(rest.response_path) if rest.response_path else None
        self.json_response = self.response_path is not None
        render_body(self.template, model, SAMPLE, self.template_path)  # fail before the first request
        super().__init__(model, options)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def build_request(self, req: GenRequest) -> HTTPRequest:
        return HTTPRequest(self.base_url, render_body(self.template, self.model, req, self.template_path))

    def parse_response(self, data: Any) -> Parsed:
        if self.response_path is None:
            return Parsed(str(data))
        return extract(data, self.response_path)

    def describe(self) -> dict[str, Any]:
        source = Path(self.template_path).read_bytes()
        return {**super().describe(), "request_template": self.template_path,
                "request_template_sha256": hashlib.sha256(source).hexdigest(),
                "response_path": ".".join(map(str, self.response_path)) if self.response_path else None}
