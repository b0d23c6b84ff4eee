"""Kill a running audit, rerun it: finished generations are kept, nothing is duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def test_kill_and_resume(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "refuseu.auditor.cli", str(tiny_model_dir), "--suite", "core", "--langs", "en",
            "--max-new-tokens", "24", "--batch-size", "4", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gens = out / "generations.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if gens.exists() and len(gens.read_text().splitlines()) >= 8:
            break
        if proc.poll() is not None:
            pytest.fail(f"audit ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line)["id"] for line in gens.read_text().splitlines() if line.endswith("}")]
    assert 8 <= len(before) < 196
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    after = [json.loads(line)["id"] for line in gens.read_text().splitlines()]
    assert after[: len(before)] == before  # kept, not regenerated
    assert len(after) == len(set(after))  # nothing twice
    total = json.loads((out / "manifest.json").read_text())["n_requests"]
    assert len(after) == total
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["n_records"] == total
