"""Responses/s of the default judge: markers plus language ID, on the labeled set's answers.

    python bench/judge_speed.py [--n 20000] [--long]

Target (issue 4): at least 2,000 responses/s on 2 CPU cores. Prints wall-clock throughput and CPU-time
throughput (responses per CPU-second, all threads of this process), with the load average, because a shared
machine's wall clock measures the neighbours as much as the judge. ``--long`` pads every answer to ~1,200
characters (a 256-token answer) to show that only the opening is read.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from refuseu.auditor.judges.base import JudgeItem
from refuseu.auditor.judges.io import labeled_items, load_labeled
from refuseu.auditor.judges.langid import detect_languages
from refuseu.auditor.judges.markers import MarkersJudge

CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "judge_cases.jsonl"
PAD = " This sentence pads the answer to the length of a long model answer, as real audits produce."


def timed(fn: Callable[[list[JudgeItem]], None], items: list[JudgeItem]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(items)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="responses to judge")
    ap.add_argument("--long", action="store_true", help="pad answers to ~1,200 characters")
    args = ap.parse_args()

    base = labeled_items(load_labeled(CASES))
    if args.long:
        base = [JudgeItem(it.record_id, it.case, it.response + PAD * 12) for it in base]
    items = [base[i % len(base)] for i in range(args.n)]
    judge = MarkersJudge()
    judge.judge_sync(base)  # warm-up: lingua loads its models lazily on first use

    def run_judge(xs: list[JudgeItem]) -> None:
        for i in range(0, len(xs), judge.batch_size):
            judge.judge_sync(xs[i:i + judge.batch_size])

    def run_langid(xs: list[JudgeItem]) -> None:
        for i in range(0, len(xs), judge.batch_size):
            detect_languages([x.response for x in xs[i:i + judge.batch_size]])

    mean_len = sum(len(x.response) for x in items) / len(items)
    print(f"{len(items)} responses (mean {mean_len:.0f} chars), {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}")
    for name, fn in (("language ID only", run_langid), ("markers + language ID", run_judge)):
        wall, cpu = timed(fn, items)
        print(f"{name:<22} {len(items) / wall:8.0f} responses/s wall   {len(items) / cpu:8.0f} responses per CPU-second")
    print(f"load average after: {os.getloadavg()[0]:.1f} (a load above the CPU count means the wall figure is shared)")


if __name__ == "__main__":
    main()
