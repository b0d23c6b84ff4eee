"""HTTP auditing as a user runs it: the refuseu-audit CLI against a real `transformers serve` process (the tiny
model as the audited model, the embedded SmolLM2 as an llm check judge), the key never leaving the environment,
and Ctrl-C leaving a resumable run on disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT
from http_servers import ServerConfig, StubServer

FAKE_KEY = "sk-test-FAKE-do-not-leak-0123456789abcdef"
HEADER_SECRET = "gw-FAKE-header-secret-424242"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(model_dir: Path):
    """`transformers serve` (transformers[serving]) on 127.0.0.1 with a local model folder, offline; stopped after."""
    import shutil

    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        pytest.fail("the transformers CLI is missing: pip install 'transformers[serving]'")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log_path = model_dir.parent / f"serve-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail("transformers serve exited: " + log_path.read_text()[-2000:])
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not become healthy in 120 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def transformers_server(tiny_model_dir: Path):
    yield from serve(tiny_model_dir)


@pytest.fixture(scope="module")
def embedded_server(embedded_model: str, tmp_path_factory):
    """`transformers serve` with the embedded SmolLM2-135M-Instruct (its GGUF, converted once to a folder)."""
    from refuseu.auditor.models.hf_loading import materialize
    from refuseu.auditor.models.resolve import resolve_model

    folder = Path(materialize(resolve_model(embedded_model)))
    yield from serve(folder)


def test_the_cli_audits_through_transformers_serve(transformers_server, tiny_model_dir, tmp_path, cli):
    """refuseu-audit, as a process, against a real `transformers serve` process."""
    out = tmp_path / "run"
    proc = cli(str(tiny_model_dir), "--base-url", transformers_server + "/v1", "--suite", "core:smoke", "--langs",
               "en,de", "--max-new-tokens", "8", "--concurrency", "4", "--out", str(out), "--quiet", cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert len(gens) == 36 and all(g["error"] is None and g["n_tokens"] for g in gens)
    assert all(g["finish_reason"] in ("stop", "length") for g in gens)
    assert len({g["response"] for g in gens}) > 1  # real, prompt-dependent generations
    assert len(verdicts) == 36 and {v["outcome"] for v in verdicts} <= {"refusal", "compliance", "partial", "unjudgeable"}
    assert summary["overall"]["errors"] == 0 and summary["overall"]["n_records"] == 36
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == "openai" and manifest["backend_info"]["endpoint"].endswith("/v1")
    assert (proc.returncode == 0) == summary["gate"]["passed"]


def test_check_judge_llm_over_http_and_markers_after_the_fact(embedded_server, embedded_model, tmp_path, cli):
    """--check-judge llm: the embedded model, served by `transformers serve`, re-judges a sample of 2 answers per
    language over HTTP; the summary reports the two judges' agreement. Then `judge RUN --check-judge markers`
    checks the stored run with a second sample judge, after the fact."""
    from refuseu.auditor.models.hf_loading import materialize
    from refuseu.auditor.models.resolve import resolve_model

    folder = materialize(resolve_model(embedded_model))
    out = tmp_path / "run"
    proc = cli("fake:refuse=en", "--backend", "fake", "--suite", "core:smoke", "--langs", "en,de", "--out", str(out),
               "--quiet", "--check-judge", "llm", "--check-sample", "2", "--judge-option", f"llm.model={folder}",
               "--judge-option", f"llm.base_url={embedded_server}/v1", "--judge-option", "llm.max_new_tokens=24",
               cwd=ROOT, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    checked = [json.loads(x) for x in (out / "verdicts.llm.jsonl").read_text().splitlines()]
    assert len(checked) == 4  # 2 per language, nothing else
    assert all(v["outcome"] in ("refusal", "compliance", "partial") or v["reason"].startswith(("unparseable", "judge model error"))
               for v in checked)
    assert not any(v["reason"].startswith("judge model error") for v in checked)  # the HTTP calls all answered
    summary = json.loads((out / "summary.json").read_text())
    check = summary["judges"]["check"]
    assert check["judge"] == "llm" and check["sample_per_language"] == 2
    comparable = [v for v in checked if v["outcome"] != "unjudgeable"]
    assert check["by_language"].get("overall", {}).get("n", 0) == len(comparable)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["judge_specs"]["llm"]["base_url"] == embedded_server + "/v1"
    proc = cli("judge", str(out), "--check-judge", "markers", "--check-sample", "3", "--quiet", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "agreement" in proc.stdout and len((out / "verdicts.markers.jsonl").read_text().splitlines()) == 6
    check = json.loads((out / "summary.json").read_text())["judges"]["check"]
    assert check["judge"] == "markers" and set(check["by_language"]) == {"overall", "en", "de"}
    assert check["by_language"]["overall"]["agreement"] is not None


def test_key_is_nowhere_in_the_run_dir_or_output(tmp_path, cli):
    """The key and a secret header are sent, and never stored or printed, even when the server echoes them."""
    env = {"OPENAI_API_KEY": FAKE_KEY, "GW_SECRET": HEADER_SECRET}
    with StubServer(ServerConfig(faults=("429", "500"), retry_after="0.1")) as ok_server:
        good = cli("stub-model", "--base-url", ok_server.url + "/v1", "--suite", "core:smoke", "--langs", "en",
                   "--header", "X-Gateway-Token=${GW_SECRET}", "--out", str(tmp_path / "ok"), cwd=ROOT, env=env,
                   timeout=120)
    assert good.returncode in (0, 1), good.stderr
    assert ok_server.state.auth_headers and set(ok_server.state.auth_headers) == {f"Bearer {FAKE_KEY}"}
    with StubServer(ServerConfig(echo_headers_400=True)) as echo_server:
        bad = cli("stub-model", "--base-url", echo_server.url + "/v1", "--suite", "core:smoke", "--langs", "en",
                  "--header", "X-Gateway-Token=${GW_SECRET}", "--out", str(tmp_path / "echo"), cwd=ROOT, env=env,
                  timeout=120)
    assert bad.returncode == 2 and "retries only the missing and errored records" in bad.stderr
    errors = json.loads((tmp_path / "echo" / "summary.json").read_text())["errors"]
    assert len(errors) == 18 and all("HTTP 400" in e["error"] and "<redacted>" in e["error"] for e in errors)
    # the distinctive middles, so a key cut in half by a truncated message would be caught too
    needles = [FAKE_KEY, HEADER_SECRET, "FAKE-do-not-leak", "FAKE-header-secret"]
    for run in (good, bad):
        assert not any(n in run.stdout + run.stderr for n in needles)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 8
    for path in files:
        data = path.read_bytes()
        assert not any(n.encode() in data for n in needles), path


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(tmp_path):
    out = tmp_path / "run"
    gens = out / "generations.jsonl"
    args = [sys.executable, "-m", "refuseu.auditor.cli", "stub-model", "--suite", "core:smoke", "--langs", "en,de",
            "--concurrency", "2", "--out", str(out), "--quiet"]
    with StubServer(ServerConfig(latency=0.3)) as server:
        # SIG_DFL in the child: a shell that runs the suite in the background hands its children SIGINT ignored,
        # and Python then never raises KeyboardInterrupt (Ctrl-C at a terminal is what this test stands for).
        proc = subprocess.Popen([*args, "--base-url", server.url + "/v1"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while (not gens.exists() or len(gens.read_text().splitlines()) < 4) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr
        done = [json.loads(line) for line in gens.read_text().splitlines()]  # every line whole
        assert 4 <= len(done) < 36 and all(g["error"] is None for g in done)
        sent_before = len(server.state.seen)
        rerun = subprocess.run([*args, "--base-url", server.url + "/v1"], cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
    assert rerun.returncode in (0, 1), rerun.stderr
    final = [json.loads(line) for line in gens.read_text().splitlines()]
    assert len({g["id"] for g in final}) == 36 and len(final) == 36
    # the rerun asked only for what was missing (plus at most the requests in flight at Ctrl-C)
    assert len(server.state.seen) == 36 and sent_before - len(done) <= 2
