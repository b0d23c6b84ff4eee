"""Prompts/s of the hf backend on the embedded model at several batch sizes.

    python bench/hf_generation.py [--model smollm2-135m] [--batch-sizes 1,8,32] [--max-new-tokens 32]

Target (issue 2): batch 32 gives at least 4x the prompts/s of batch 1 on 2 CPU cores. Outputs have a fixed
length (EOS is suppressed), so every batch size does the same work per prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from refuseu.auditor.backends import BackendOptions, DecodingParams, GenRequest, get_backend
from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.data.selection import select_cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=64, help="prompts per batch size (batch 1 uses a quarter)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    backend = get_backend("hf", args.model, BackendOptions())
    backend.lm.generation_config.eos_token_id = None  # fixed-length outputs: equal work at every batch size
    backend.lm.generation_config.suppress_tokens = None
    cases = select_cases(load_suite("core"), sample=args.prompts, seed=0)
    params = DecodingParams(max_new_tokens=args.max_new_tokens)
    print(f"model {args.model} on {backend.describe()['device']} ({backend.describe()['dtype']}), "
          f"{args.max_new_tokens} new tokens per prompt")
    print(f"{'batch':>5} {'prompts':>7} {'seconds':>8} {'prompts/s':>10} {'tokens/s':>9} {'speed-up':>8}")
    base = None
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        n = max(bs, args.prompts // 4 if bs == 1 else args.prompts)
        reqs = [GenRequest(f"r{i}", c.id, c.lang, c.messages, params) for i, c in enumerate((cases * 4)[:n])]
        asyncio.run(backend.generate(reqs[:bs]))  # warm-up
        start = time.perf_counter()
        tokens = 0
        for i in range(0, n, bs):
            gens = asyncio.run(backend.generate(reqs[i:i + bs]))
            tokens += sum(g.n_tokens or 0 for g in gens)
        secs = time.perf_counter() - start
        rate = n / secs
        base = base or rate
        print(f"{bs:>5} {n:>7} {secs:>8.1f} {rate:>10.2f} {tokens / secs:>9.1f} {rate / base:>7.1f}x")


if __name__ == "__main__":
    main()
