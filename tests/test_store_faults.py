"""A run directory survives what real runs meet (issue 14): a record torn at any byte, a second process on the
same directory, and the HTTP faults of a real server; each ends in error records and exit 2, and a rerun
redoes exactly what is missing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from http_servers import ServerConfig, StubServer

from refuseu.auditor.cli.common import exit_code
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.runner import run_audit
from refuseu.auditor.store import RunStore, read_jsonl, repair_tail

VOLATILE = ("created", "updated", "versions")


def fake_config(out, **kw) -> AuditConfig:
    base = dict(model="fake:refuse=en", backend="fake", suite="core:smoke", langs=["en", "lt"], out=str(out),
                quiet=True, judge=["markers"])
    base.update(kw)
    return AuditConfig(**base)


def stable(summary: dict) -> dict:
    """The summary without the fields that differ between two identical runs (timestamps, versions)."""
    out = json.loads(json.dumps(summary))
    for key in VOLATILE:
        out["run"].pop(key, None)
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    summary = asyncio.run(run_audit(fake_config(out)))
    return out, summary


def test_a_torn_tail_at_every_byte_is_repaired(tmp_path, baseline):
    """Cut the last record of generations.jsonl and of verdicts.jsonl at every byte offset: readers skip the
    torn part, and the next append first cuts it back (or, for a complete record that only lost its newline,
    restores the newline), so the file always parses whole afterwards."""
    src, _ = baseline
    for name in ("generations.jsonl", "verdicts.jsonl"):
        lines = (src / name).read_bytes().splitlines(keepends=True)
        prefix, last = b"".join(lines[:-1]), lines[-1]
        assert any(b > 127 for b in b"".join(lines)) or name == "verdicts.jsonl"  # multi-byte text is torn too
        extra = {"id": "appended-after-repair", "response": "ok"}
        for k in range(len(last) + 1):
            path = tmp_path / name
            path.write_bytes(prefix + last[:k])
            ids = [r["id"] for r in read_jsonl(path)]  # never raises on a torn tail
            complete = k >= len(last) - 1  # the whole record, with or without its newline
            assert len(ids) == len(lines) - (0 if complete else 1), (name, k)
            dropped = repair_tail(path)
            assert dropped == (0 if complete or k == 0 else k), (name, k)
            RunStore(tmp_path).append(path, [extra])
            after = [r["id"] for r in read_jsonl(path)]
            assert after == ids + ["appended-after-repair"], (name, k)
            assert path.read_bytes().endswith(b"\n") and path.read_bytes().count(b"\n") == len(after)


@pytest.mark.parametrize("name", ["generations.jsonl", "verdicts.jsonl"])
def test_a_rerun_after_a_torn_record_equals_an_uninterrupted_run(tmp_path, baseline, name):
    """Torn records (at a handful of offsets, multi-byte characters included) in either file: the rerun
    finishes, each case has exactly one answer and one verdict, and the summary equals the uninterrupted one."""
    import shutil

    src, want = baseline
    last = (src / name).read_bytes().splitlines(keepends=True)[-1]
    offsets = sorted({1, 2, len(last) // 3, len(last) // 2, len(last) - 3, len(last) - 2, len(last) - 1})
    multibyte = next((i for i, b in enumerate(last) if b >= 0xC0), None)
    if multibyte is not None:
        offsets.append(multibyte + 1)  # inside a UTF-8 character
    for k in offsets:
        run = tmp_path / f"run{k}"
        shutil.copytree(src, run)
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) - len(last) + k])
        summary = asyncio.run(run_audit(fake_config(run)))
        assert stable(summary) == stable(want), (name, k)
        store = RunStore(run)
        gens = [r["id"] for r in read_jsonl(store.generations_path)]
        assert len(gens) == len(set(gens)) == want["overall"]["n_records"]
        verdicts = [r["id"] for r in read_jsonl(store.verdicts_path())]
        assert sorted(verdicts) == sorted(gens)


def test_a_second_process_on_a_busy_run_directory_exits_2_at_once(tmp_path, cli):
    """One process holds the run; another audit on the same --out stops within seconds with exit 2, naming the
    holder; once the first is done the same command runs to the end."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from refuseu.auditor.store import RunStore\n"
        f"with RunStore({str(out)!r}).locked():\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        proc = cli("fake", "--backend", "fake", "--suite", "core:smoke", "--langs", "en", "--out", str(out), "--quiet")
        assert time.monotonic() - start < 15
        assert proc.returncode == 2, proc.stderr
        assert "in use by another refuseu process" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (out / "generations.jsonl").exists()  # it wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # a lock held by a killed process is gone with it
    proc = cli("fake", "--backend", "fake", "--suite", "core:smoke", "--langs", "en", "--out", str(out), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads((out / "summary.json").read_text())["overall"]["n_records"] == 18


def http_audit(tmp_path, server, name="run", **kw):
    base = dict(model="stub-model", base_url=server.url + "/v1", suite="core:smoke", langs=["en"],
                out=str(tmp_path / name), quiet=True, concurrency=8, timeout=1.0, max_retries=1, judge=["markers"])
    base.update(kw)
    return asyncio.run(run_audit(AuditConfig(**base)))


@pytest.mark.parametrize(("fault", "settings", "message"), [
    ("429", {"max_retries": 2}, "HTTP 429"),
    ("429-long", {"max_retries": 3, "timeout": 1.0}, "longer than --timeout"),
    ("drop", {"max_retries": 0}, "connection error"),
    ("error200", {"max_retries": 1}, "error object in a 2xx body"),
    ("huge", {"max_retries": 1}, "response body larger than 8 MB"),
    ("hang", {"max_retries": 1, "timeout": 0.5}, "timeout after 0.5s"),
])
def test_http_faults_end_in_error_records_and_a_rerun_retries_only_those(tmp_path, fault, settings, message):
    config = ServerConfig(always=fault.split("-")[0], retry_after="600" if fault == "429-long" else "0")
    start = time.monotonic()
    with StubServer(config) as server:
        summary = http_audit(tmp_path, server, **settings)
        attempts = sum(server.state.seen.values())
        elapsed = time.monotonic() - start
        server.config.always = None  # the same endpoint, healthy again (its URL is part of every record id)
        server.state.seen.clear()
        again = http_audit(tmp_path, server, **settings)
        assert len(server.state.seen) == 18 and sum(server.state.seen.values()) == 18  # only the errored, once
    assert summary["overall"]["errors"] == 18 and summary["overall"]["n"] == 0
    assert all(message in e["error"] for e in summary["errors"]), summary["errors"][0]
    assert exit_code(summary, str(tmp_path / "run")) == 2
    assert not summary["gate"]["passed"] and "no judged answers" in summary["gate"]["failures"][0]
    expected_attempts = {"429": 3, "429-long": 1, "drop": 1, "error200": 2, "huge": 1, "hang": 2}[fault]
    assert attempts == 18 * expected_attempts
    assert elapsed < 60  # a long Retry-After is not waited for; a hung server costs the timeout, not forever
    assert again["overall"]["errors"] == 0 and again["overall"]["n"] + again["overall"]["n_benign"] == 18
    gens = [r["id"] for r in read_jsonl(RunStore(tmp_path / "run").generations_path)]
    assert len(set(gens)) == 18  # one id per case; the error records were superseded


def test_a_huge_body_keeps_memory_bounded(tmp_path):
    import tracemalloc

    with StubServer(ServerConfig(always="huge")) as server:
        tracemalloc.start()
        http_audit(tmp_path, server, max_retries=0, concurrency=2)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, peak  # 18 bodies of 10 MB each were never held at once
