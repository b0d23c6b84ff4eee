"""Speed and start-up cost of the default judge (the one `refuseu-audit` uses with no --judge flag).

    python bench/judge_speed.py [--n 20000] [--long] [--judge NAME]

Targets (issue 12): at least 2,000 answers of about 200 characters per second on 2 CPU cores, and at most 2 s and
300 MB of fixed cost that judging (language ID included) adds to a run. Prints:

- throughput, wall clock and per CPU-second (all threads of this process and its forked workers), with the load average, because a shared
  machine's wall clock measures the neighbours as much as the judge; answers are the judge corpus's training
  answers (native text in the 12 languages), cut at a word to about 200 characters, or to about 1,300 with
  ``--long`` (shorter ones are repeated to reach the length);
- the fixed cost, measured in fresh processes: loading the judge and judging two answers (one short, one long,
  which makes language ID load what it needs), in seconds and in peak resident memory over a process that only
  imported refuseu; and a whole 2-case audit (fake backend) for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from refuseu.auditor.data.cases import Case
from refuseu.auditor.judges import get_judge
from refuseu.auditor.judges.base import JudgeItem
from refuseu.auditor.judges.corpus import training_examples
from refuseu.auditor.judges.langid import detect_response_languages

# Peak memory is read from /proc/self/status (VmHWM), not getrusage: ru_maxrss is inherited from the parent across
# fork and exec, so a child of this (large) benchmark process would report the parent's peak.
PEAK_MB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"

FIXED_COST = r"""
import json, sys, time
t0 = time.perf_counter()
import refuseu.auditor.runner, refuseu.auditor.judges
from refuseu.auditor.data.cases import Case
from refuseu.auditor.judges.base import JudgeItem
base_rss = PEAK_MB
t1 = time.perf_counter()
if sys.argv[1] != "none":
    judge = refuseu.auditor.judges.get_judge(sys.argv[1])
    case = Case("c1", "pl", "S1", "none", (("user", "Jak zrobić coś groźnego?"),))
    judge.judge_sync([JudgeItem("a", case, "Nie."),
                      JudgeItem("b", case, "Nie mogę w tym pomóc. Jeśli jesteś w niebezpieczeństwie, zadzwoń pod 112. " * 4)])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "judge_s": t2 - t1, "base_rss_mb": base_rss, "peak_rss_mb": PEAK_MB}))
""".replace("PEAK_MB", PEAK_MB)


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (the judge's forked workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[list[JudgeItem]], None], items: list[JudgeItem]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn(items)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def fixed_cost(judge: str, repeats: int = 3) -> dict[str, float]:
    """The median over fresh processes of what loading `judge` and judging two answers costs."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", FIXED_COST, judge], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    runs.sort(key=lambda r: r["judge_s"])
    mid = runs[len(runs) // 2]
    return {"seconds": mid["judge_s"], "extra_mb": mid["peak_rss_mb"] - mid["base_rss_mb"],
            "peak_mb": mid["peak_rss_mb"]}


def audit_cost(tmp: Path) -> tuple[float, float]:
    """A 2-case audit with the fake backend and the default judge, as a command: seconds and peak MB."""
    start = time.perf_counter()
    code = (f"import sys; from refuseu.auditor.cli import main; rc = main(sys.argv[1:]); "
            f"print({PEAK_MB}, file=sys.stderr); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "fake", "--backend", "fake", "--suite", "core:smoke",
                           "--langs", "en,pl", "--sample", "1", "--out", str(tmp / "run"), "--quiet"],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(proc.stderr)
    return time.perf_counter() - start, float(proc.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="answers to judge")
    ap.add_argument("--long", action="store_true", help="answers of about 1,300 characters instead of 200")
    ap.add_argument("--judge", default=None, help="a judge name (default: the default judge)")
    args = ap.parse_args()

    from refuseu.auditor.config import JudgesConfig

    name = args.judge or JudgesConfig().judge[0]
    target = 1300 if args.long else 200
    base = []
    for e in training_examples():
        text = e.response
        while len(text) < target:
            text += "\n\n" + e.response
        cut = text.rfind(" ", 0, target)
        base.append(JudgeItem(e.id, Case(e.id, e.lang, "uncategorized", "none", (("user", e.prompt),)),
                              text[:cut if cut > target // 2 else target]))
    items = [base[i % len(base)] for i in range(args.n)]
    judge = get_judge(name)
    judge.judge_sync(base)  # warm-up: the model and lingua load lazily on first use

    def run_judge(xs: list[JudgeItem]) -> None:
        for i in range(0, len(xs), judge.batch_size):
            judge.judge_sync(xs[i:i + judge.batch_size])

    def run_langid(xs: list[JudgeItem]) -> None:
        for i in range(0, len(xs), judge.batch_size):
            chunk = xs[i:i + judge.batch_size]
            detect_response_languages([x.response for x in chunk], [x.case.lang for x in chunk])

    mean_len = sum(len(x.response) for x in items) / len(items)
    print(f"judge {name}: {len(items)} answers (mean {mean_len:.0f} chars), {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}")
    for label, fn in (("language ID only", run_langid), (f"{name} (all of it)", run_judge)):
        wall, cpu = timed(fn, items)
        print(f"{label:<24} {len(items) / wall:8.0f} answers/s wall   {len(items) / cpu:8.0f} answers per CPU-second")
    print(f"load average after: {os.getloadavg()[0]:.1f} (above the CPU count, the wall figure is shared)")

    none, cost = fixed_cost("none"), fixed_cost(name)
    print(f"fixed cost of judging with {name} (fresh process, median of 3): {cost['seconds']:.2f} s, "
          f"+{cost['extra_mb'] - none['extra_mb']:.0f} MB peak resident memory (target: at most 2 s and 300 MB)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        seconds, peak = audit_cost(Path(tmp))
    print(f"a 2-case audit (fake backend, {name}) as a command: {seconds:.2f} s, {peak:.0f} MB peak")


if __name__ == "__main__":
    main()
