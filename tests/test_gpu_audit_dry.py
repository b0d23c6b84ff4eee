"""bench/gpu_audit.py --dry-run: the GPU benchmark's code path, on CPU at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from conftest import ROOT


def test_gpu_audit_dry_run(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_audit.py"), "--dry-run", "--json", str(out),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    rows = {r["backend"]: r for r in figures["rows"]}
    assert rows["hf"]["prompts"] == 24 and rows["hf"]["errors"] == 0  # 2 per language x 12
    assert rows["hf"]["generated_tokens"] > 0 and rows["hf"]["prompt_tokens"] > rows["hf"]["prompts"]
    assert figures["ceiling_flops"] > 0
    if importlib.util.find_spec("vllm") is None:
        assert "vllm path skipped: vLLM is not installed" in proc.stdout
    else:
        assert rows["vllm"]["prompts"] == 48 and rows["vllm"]["generated_tokens"] == 48 * 8  # fixed lengths
    assert "| hf | 24 |" in proc.stdout
    assert (tmp_path / "work" / "run-hf" / "report.html").is_file()  # the real runner rendered the run
