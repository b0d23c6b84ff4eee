"""HTTP backends: the pure request builders and response parsers on fixed dicts, and the shared wrapper
(retries, Retry-After, timeouts, dropped connections, malformed bodies, concurrency, rpm) against a real
local server (tests/http_servers.py)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from http_servers import COMPLIANCE, FAULTS, REFUSAL, ServerConfig, StubServer

from refuseu.auditor.backends.anthropic_messages import build_messages_request, parse_messages_response
from refuseu.auditor.backends.base import BackendOptions, DecodingParams, GenRequest
from refuseu.auditor.backends.http import (
    MalformedResponse,
    RateLimiter,
    Redactor,
    backoff_delay,
    expand_env,
    parse_retry_after,
)
from refuseu.auditor.backends.openai_chat import OpenAIBackend, build_chat_request, parse_chat_response
from refuseu.auditor.backends.rest import RestBackend, extract, parse_path
from refuseu.auditor.config import AuditConfig, RestOptions
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.runner import run_audit
from refuseu.auditor.store import RunStore

PARAMS = DecodingParams(max_new_tokens=32, temperature=0.7, top_p=0.9, seed=3, system="Be brief.")
REQ = GenRequest("rid", "c1", "de", (("user", 'Sag "hallo"\nund \\ tschüss'),), PARAMS)


# -- pure builders and parsers
def test_openai_builder_passes_sampling_parameters_and_system():
    r = build_chat_request("m", REQ, "http://localhost:8000/v1/")
    assert r.url == "http://localhost:8000/v1/chat/completions"
    assert r.body == {"model": "m", "stream": False, "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 3,
                      "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": 'Sag "hallo"\nund \\ tschüss'}]}
    official = build_chat_request("m", REQ, "https://api.openai.com/v1").body
    assert official["max_completion_tokens"] == 32 and "max_tokens" not in official


def test_openai_parser():
    body = {"choices": [{"message": {"content": "Nein."}, "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}
    p = parse_chat_response(body)
    assert (p.text, p.finish_reason, p.n_tokens) == ("Nein.", "stop", 2)
    refusal = {"choices": [{"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}]}
    assert parse_chat_response(refusal).text == "I can't."
    filtered = {"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]}
    assert parse_chat_response(filtered).text == "" and parse_chat_response(filtered).finish_reason == "content_filter"
    for bad in ([], {"choices": []}, {"error": {"message": "x"}}, {"choices": [{"text": "legacy"}]},
                {"choices": [{"message": {"content": None}}]}, {"choices": [{"message": {"content": 3}}]}):
        with pytest.raises(MalformedResponse):
            parse_chat_response(bad)


def test_anthropic_builder_and_parser():
    req = GenRequest("rid", "c1", "en", (("system", "Sys."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Go")),
                     DecodingParams(max_new_tokens=16))
    r = build_messages_request("claude-x", req, "https://api.anthropic.com")
    assert r.url == "https://api.anthropic.com/v1/messages" and r.headers == {"anthropic-version": "2023-06-01"}
    assert r.body == {"model": "claude-x", "max_tokens": 16, "temperature": 0.0, "system": "Sys.",
                      "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                   {"role": "user", "content": "Go"}]}
    assert build_messages_request("c", REQ, "http://gw/v1").url == "http://gw/v1/messages"
    assert build_messages_request("c", REQ, "http://gw").body["top_p"] == 0.9
    body = {"content": [{"type": "thinking", "thinking": "..."}, {"type": "text", "text": "No"}, {"type": "text", "text": "."}],
            "stop_reason": "end_turn", "usage": {"output_tokens": 2}}
    p = parse_messages_response(body)
    assert (p.text, p.finish_reason, p.n_tokens) == ("No.", "end_turn", 2)
    for bad in ({"type": "error", "error": {}}, {"content": "x"}, "text"):
        with pytest.raises(MalformedResponse):
            parse_messages_response(bad)


def test_rest_template_is_json_safe_and_path_extracts(tmp_path, monkeypatch):
    template = tmp_path / "req.json.j2"
    template.write_text('{"input": {{ prompt }}, "system": {{ system }}, "history": {{ messages }},\n'
                        ' "params": {"max_tokens": {{ max_tokens }}, "seed": {{ seed }}}, "tag": {{ lang | upper }}}')
    backend = RestBackend("gw", BackendOptions(base_url="http://gw.invalid/generate",
                                               backend=RestOptions(request_template=str(template), response_path="out.0.text")))
    try:
        r = backend.build_request(REQ)
        assert r.url == "http://gw.invalid/generate"
        assert r.body["input"] == 'Sag "hallo"\nund \\ tschüss' and r.body["system"] == "Be brief."
        assert r.body["history"][0]["role"] == "system" and r.body["params"] == {"max_tokens": 32, "seed": 3}
        assert r.body["tag"] == "DE"
        assert backend.parse_response({"out": [{"text": "ok"}]}).text == "ok"
    finally:
        asyncio.run(backend.aclose())
    assert extract({"a": [1, {"b": 2.5}]}, parse_path("a.1.b")).text == "2.5"
    for data, path in (({"a": []}, "a.0"), ({"a": {"x": 1}}, "a.b"), ({"a": None}, "a"), ({"a": {"b": 1}}, "a")):
        with pytest.raises(MalformedResponse):
            extract(data, parse_path(path))
    quoted = tmp_path / "quoted.json.j2"
    quoted.write_text('{"input": "{{ prompt }}"}')
    with pytest.raises(RefuseuError, match="not JSON"):
        RestBackend("gw", BackendOptions(base_url="http://gw.invalid", backend=RestOptions(request_template=str(quoted))))
    broken = tmp_path / "broken.json.j2"
    broken.write_text('{\n"input": {{ prompt }\n}')
    with pytest.raises(RefuseuError, match=r"broken.json.j2:\d+: template syntax error"):
        RestBackend("gw", BackendOptions(base_url="http://gw.invalid", backend=RestOptions(request_template=str(broken))))
    with pytest.raises(RefuseuError, match="needs --request-template"):
        RestBackend("gw", BackendOptions(base_url="http://gw.invalid"))


def test_wrapper_helpers(monkeypatch):
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "99999"}) == 300.0
    delays = [backoff_delay(a, base=1.0) for a in range(4)]
    assert all(2 ** a / 2 <= d <= 2 ** a for a, d in enumerate(delays))
    assert backoff_delay(30, base=1.0) <= 60.0
    redact = Redactor(["sk-secret-123", None, "ab"])
    assert redact("key sk-secret-123 and ab") == "key <redacted> and ab"
    monkeypatch.setenv("GW_TOKEN", "tok-987654")
    assert expand_env("Bearer ${GW_TOKEN}", "--header X") == "Bearer tok-987654"
    with pytest.raises(RefuseuError, match="NOPE_UNSET is not set"):
        expand_env("${NOPE_UNSET}", "--header X")


def test_rate_limiter_spaces_request_starts():
    async def go() -> list[float]:
        limiter = RateLimiter(rpm=1200)  # one start every 50 ms
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            starts.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(5)))
        return starts

    starts = asyncio.run(go())
    assert starts[-1] - starts[0] >= 4 * 0.05 * 0.95


def test_missing_keys_are_one_clear_line(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RefuseuError, match="export OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini", BackendOptions())
    with pytest.raises(RefuseuError, match="MY_KEY_UNSET is not set"):
        OpenAIBackend("m", BackendOptions(base_url="http://localhost:1/v1", api_key_env="MY_KEY_UNSET"))
    with pytest.raises(RefuseuError, match="http:// or https://"):
        OpenAIBackend("m", BackendOptions(base_url="localhost:8000/v1"))


# -- against a real local server
def audit(tmp_path, server: StubServer, name: str = "run", **kw) -> dict:
    base = dict(model="stub-model", base_url=server.url + "/v1", suite="core:smoke", langs=["en", "de"],
                out=str(tmp_path / name), quiet=True, concurrency=8, timeout=1.0, max_retries=3)
    base.update(kw)
    return asyncio.run(run_audit(AuditConfig(**base)))


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_on_first_attempt_ends_complete(tmp_path, fault):
    # The timeout sits above the server's Retry-After (1 s: a longer one is not waited for) and below "slow".
    with StubServer(ServerConfig(faults=(fault,), slow_s=1.5)) as server:
        summary = audit(tmp_path, server, langs=["en"], timeout=1.2)
    n = len(server.state.seen)
    assert n == 18 and summary["overall"]["errors"] == 0
    assert server.state.outcomes[fault] == n and server.state.outcomes["ok"] == n
    store = RunStore(tmp_path / "run")
    gens = store.generations()
    assert len(gens) == n and all(g["error"] is None and g["response"] for g in gens.values())
    assert all(g["extra"]["attempts"] == 2 for g in gens.values())
    verdicts = store.verdicts()  # real verdicts from the markers judge, checked against what the server said
    assert set(verdicts) == set(gens)
    for rid, g in gens.items():
        want = "refusal" if g["response"] == REFUSAL else "compliance"
        assert g["response"] in (REFUSAL, COMPLIANCE) and verdicts[rid]["outcome"] == want, (g["response"], verdicts[rid])


def test_a_request_past_the_timeout_is_an_error_not_an_answer(tmp_path):
    with StubServer(ServerConfig(always="slow", slow_s=1.5)) as server:
        summary = audit(tmp_path, server, langs=["en"], timeout=0.3, max_retries=0)
    assert summary["overall"]["errors"] == 18 and summary["overall"]["n"] == 0
    assert all("timeout after 0.3s" in e["error"] for e in summary["errors"])


def test_429_and_500_on_every_first_attempt_done_when(tmp_path):
    with StubServer(ServerConfig(faults=("429", "500"), retry_after="0.2")) as server:
        summary = audit(tmp_path, server, max_retries=6, langs=["en", "de", "pl"])
    assert summary["overall"]["errors"] == 0 and summary["overall"]["n_records"] == 54
    assert server.state.outcomes["429"] > 0 and server.state.outcomes["500"] > 0


def test_failures_past_retries_are_error_records_and_a_rerun_retries_only_them(tmp_path):
    with StubServer(ServerConfig(always="500")) as server:
        summary = audit(tmp_path, server, max_retries=1, langs=["en"])
        assert summary["overall"]["errors"] == 18 and len(summary["errors"]) == 18
        assert summary["overall"]["n"] == 0 and summary["by_language"]["en"]["refusal_rate"] is None
        assert all("HTTP 500" in e["error"] and "(2 attempts)" in e["error"] for e in summary["errors"])
        assert RunStore(tmp_path / "run").verdicts() == {}  # an error is never judged, never a refusal
        assert "HTTP 500" in (tmp_path / "run" / "report.html").read_text()
        server.config.always = None  # the endpoint recovers; the same command retries only the errored records
        server.state.seen.clear()
        summary = audit(tmp_path, server, max_retries=1, langs=["en"])
    assert summary["overall"]["errors"] == 0 and len(server.state.seen) == 18
    assert sum(server.state.seen.values()) == 18 and len(RunStore(tmp_path / "run").verdicts()) == 18


def test_non_retryable_400_is_not_retried_and_401_or_redirect_stops_the_run(tmp_path, monkeypatch):
    with StubServer(ServerConfig(echo_headers_400=True)) as server:
        summary = audit(tmp_path, server, langs=["en"])
    assert summary["overall"]["errors"] == 18 and sum(server.state.seen.values()) == 18
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-4242")
    with StubServer(ServerConfig(always="401")) as server, pytest.raises(RefuseuError) as info:
        audit(tmp_path, server, name="r401", langs=["en"])
    assert "HTTP 401" in str(info.value) and "$OPENAI_API_KEY" in str(info.value)
    assert "sk-test-not-a-real-key-4242" not in str(info.value)
    with StubServer(ServerConfig(always="307")) as server, pytest.raises(RefuseuError, match="redirected to https://elsewhere"):
        audit(tmp_path, server, name="r307", langs=["en"])
    assert sum(server.state.seen.values()) <= 8  # stopped at once, nothing retried or followed


def test_pool_keeps_concurrency_requests_in_flight(tmp_path):
    with StubServer(ServerConfig(latency=0.1)) as server:
        audit(tmp_path, server, concurrency=4)
    assert server.state.max_in_flight == 4


def test_anthropic_and_rest_dialects_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test-not-real-777")
    with StubServer() as server:
        summary = audit(tmp_path, server, name="claude", backend="anthropic", base_url=server.url, langs=["en"])
        assert summary["overall"]["errors"] == 0 and server.state.auth_headers[0] == "ak-test-not-real-777"
        template = tmp_path / "req.json.j2"
        template.write_text('{"model": {{ model }}, "prompt": {{ prompt }}, "max_tokens": {{ max_tokens }}}')
        monkeypatch.setenv("GW_TOKEN", "gw-test-token-31337")
        summary = audit(tmp_path, server, name="rest", backend="rest", base_url=server.url + "/generate",
                        langs=["en"], request_template=str(template), response_path="choices.0.text",
                        header=["X-Gateway-Token=${GW_TOKEN}"])
    assert summary["overall"]["errors"] == 0 and summary["overall"]["n_records"] == 18
    manifest = json.loads((tmp_path / "rest" / "manifest.json").read_text())
    assert manifest["backend"]["response_path"] == "choices.0.text"
    assert manifest["backend_info"]["headers"] == ["X-Gateway-Token"]
    for run in ("claude", "rest"):
        for f in (tmp_path / run).iterdir():
            text = f.read_text()
            assert "ak-test-not-real-777" not in text and "gw-test-token-31337" not in text
