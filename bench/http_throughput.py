"""HTTP throughput: full audits against a local OpenAI-compatible endpoint that answers after a fixed latency L.

For each concurrency c it audits n prompts (core suite, stratified sample, every language) through the
openai backend, as `refuseu-audit` does, and prints prompts/s against the ideal c / L. The endpoint runs in
its own process (tests/http_servers.py), so server and client do not share one interpreter.

    python bench/http_throughput.py                      # L = 0.25 s, c = 1, 8, 32, 64
    python bench/http_throughput.py --garak /tmp/garak-venv/bin/python   # also time garak (see docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# prompts per concurrency level: enough for several rounds at each level, and 480 at 32 (the case)
PROMPTS = {1: 48, 8: 192, 32: 480, 64: 960}


def start_endpoint(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "http_servers.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "PORT":
        proc.kill()
        raise SystemExit("the endpoint did not start")
    return proc, f"http://127.0.0.1:{line[1]}"


def audit(url: str, concurrency: int, n: int, out: Path) -> tuple[float, float, int]:
    """(generation s: first request sent to last answer stored, whole audit s, errors) for n prompts."""
    from refuseu.auditor.backends import options_from
    from refuseu.auditor.backends.openai_chat import OpenAIBackend
    from refuseu.auditor.config import AuditConfig
    from refuseu.auditor.data.resolve import load_suite
    from refuseu.auditor.runner import run_audit

    n_langs = len(load_suite("core").languages)
    if n % n_langs:
        raise SystemExit(f"{n} prompts do not split evenly over {n_langs} languages")
    config = AuditConfig(model="bench-model", base_url=url + "/v1", suite="core", sample=n // n_langs,
                         concurrency=concurrency, out=str(out), quiet=True, max_retries=2, timeout=30)
    marks: dict[str, float] = {}

    class TimedBackend(OpenAIBackend):
        async def call(self, req):  # type: ignore[no-untyped-def]
            marks.setdefault("first", time.perf_counter())
            return await super().call(req)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "generate" and done == total:
            marks["generated"] = time.perf_counter()

    start = time.perf_counter()
    backend = TimedBackend(config.model, options_from(config, OpenAIBackend))
    summary = asyncio.run(run_audit(config, progress, backend=backend))
    end = time.perf_counter()
    if summary["overall"]["n_records"] != n:
        raise SystemExit(f"expected {n} records, got {summary['overall']['n_records']}")
    return marks["generated"] - marks["first"], end - start, int(summary["overall"]["errors"])


def cli_run(url: str, n: int, concurrency: int, out: Path) -> float:
    """Wall time of the refuseu-audit command itself (process start included, as for garak)."""
    from refuseu.auditor.data.resolve import load_suite

    sample = n // len(load_suite("core").languages)
    cmd = [sys.executable, "-m", "refuseu.auditor.cli", "bench-model", "--base-url", url + "/v1", "--suite", "core",
           "--sample", str(sample), "--concurrency", str(concurrency), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise SystemExit(f"refuseu-audit failed ({res.returncode}): {res.stderr[-1000:]}")
    return wall


def garak_run(python: str, url: str, n: int, concurrency: int, workdir: Path) -> float:
    """Wall time of garak sending n requests to the same endpoint: its OpenAICompatible generator, the test.Test
    probe (8 prompts) with n/8 generations each, --parallel_requests = concurrency (garak's closest setting)."""
    config = {"openai": {"OpenAICompatible": {
        "uri": url + "/v1", "api_key": "unused",
        # the stub, like many compatible servers, needs none of these; garak would send them by default
        "suppressed_params": ["n", "stop", "frequency_penalty", "presence_penalty"]}}}
    options = workdir / "garak_generator.json"
    options.write_text(json.dumps(config))
    cmd = [python, "-m", "garak", "--target_type", "openai.OpenAICompatible", "--target_name", "bench-model",
           "--generator_option_file", str(options), "--probes", "test.Test", "--generations", str(n // 8),
           "--parallel_requests", str(concurrency), "--report_prefix", str(workdir / "garak")]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"garak failed with exit {res.returncode}: {res.stderr[-1500:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.25, help="endpoint latency L in seconds")
    parser.add_argument("--concurrency", default="1,8,32,64", help="comma-separated levels")
    parser.add_argument("--garak", help="python of a virtualenv with garak installed: also time garak")
    parser.add_argument("--garak-prompts", type=int, default=480)
    args = parser.parse_args()
    proc, url = start_endpoint(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            audit(url, 8, 24, Path(tmp) / "warm-up")  # one-time imports and judge loading, not timed
            print(f"endpoint latency L = {args.latency} s")
            print(f"{'c':>3} {'prompts':>7} {'gen s':>7} {'audit s':>7} {'prompts/s':>9} {'ideal':>7} {'of ideal':>8} {'errors':>6}")
            for i, c in enumerate(int(x) for x in args.concurrency.split(",")):
                n = PROMPTS.get(c, 15 * c)
                gen_s, audit_s, errors = audit(url, c, n, Path(tmp) / f"run{i}-c{c}")
                rate, ideal = n / gen_s, c / args.latency
                print(f"{c:>3} {n:>7} {gen_s:>7.2f} {audit_s:>7.2f} {rate:>9.1f} {ideal:>7.1f} {rate / ideal:>8.1%} {errors:>6}",
                      flush=True)
            if args.garak:
                n, c = args.garak_prompts, 32
                ours = cli_run(url, n, c, Path(tmp) / "vs-garak")
                theirs = garak_run(args.garak, url, n, c, Path(tmp))
                print(f"{n} prompts at concurrency {c}, L = {args.latency} s, whole commands: refuseu-audit "
                      f"{ours:.1f} s, garak {theirs:.1f} s; garak takes {theirs / ours:.1f}x as long")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
