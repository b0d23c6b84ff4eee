"""The option groups every command is composed of. Each field is one flag, defined here once, with its help
text, choices and checks; ``AuditConfig`` (refuseu-audit), the judge commands and refuseu-fix's ``FixConfig``
inherit the groups they need, so ``--device`` means the same thing, with the same help, everywhere.

The backend-specific groups (``VLLMOptions``, ``RestOptions``) are also the typed ``Options`` of their
backends: the runner hands each backend an instance of its own class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.options import at_least, opt, parse_pairs

DTYPES = ("auto", "bfloat16", "float16", "float32")


class Checked:
    """Runs every ``check`` along the class hierarchy after construction, so a composed config validates
    each of its groups (a dataclass would only call the last ``__post_init__``)."""

    def __post_init__(self) -> None:
        seen = set()
        for klass in reversed(type(self).__mro__):
            check = klass.__dict__.get("check")
            if check is not None and check not in seen:
                seen.add(check)
                check(self)


@dataclass
class ModelConfig(Checked):
    model: str = opt("", "MODEL: a built-in alias (smollm2-135m), a local folder, a LoRA adapter folder, a .gguf file, "
                         "a hub id, or a model name on an HTTP endpoint.")
    backend: str | None = opt(None, "Backend that runs MODEL: hf (default), vllm, openai, anthropic, rest, fake, or one "
                                    "a plugin registers (entry point group refuseu.backends). --base-url alone selects openai.")
    device: str | None = opt(None, "Device for local models (default: cuda if available, else cpu).")
    dtype: str | None = opt(None, "Weights dtype for local models (default: bfloat16 on GPU, float32 on CPU).", choices=DTYPES)
    trust_remote_code: bool = opt(False, "Allow model repositories to run their own code (off by default).")


@dataclass
class BatchConfig(Checked):
    batch_size: int | None = opt(None, "Prompts per generate call (default: picked by the backend).")

    def check(self) -> None:
        at_least(self.batch_size, 1, "--batch-size")


@dataclass
class HttpConfig(Checked):
    base_url: str | None = opt(None, "Base URL of an HTTP endpoint (selects the openai backend unless --backend says otherwise).")
    api_key_env: str | None = opt(None, "Environment variable holding the API key (never stored or printed).")
    concurrency: int = opt(16, "Concurrent HTTP requests.")
    rpm: float | None = opt(None, "Cap on HTTP requests per minute.")
    timeout: float = opt(120.0, "Per-request HTTP timeout in seconds.")
    max_retries: int = opt(6, "Retries per HTTP request on 429, 5xx, timeouts and malformed bodies.")
    header: list[str] = opt([], "Extra HTTP header K=V (repeatable; in --config also a mapping). ${VAR} in V reads the "
                                "environment.", split=False)
    backoff_base_s: float = opt(1.0, "First retry delay in seconds (doubles per retry, with jitter).", cli=False)

    def check(self) -> None:
        at_least(self.concurrency, 1, "--concurrency")
        at_least(self.max_retries, 0, "--max-retries")
        if self.timeout <= 0:
            raise RefuseuError(f"--timeout must be positive, got {self.timeout}")
        if self.rpm is not None and self.rpm <= 0:
            raise RefuseuError(f"--rpm must be positive, got {self.rpm}")
        for h in self.header:
            key, sep, _ = h.partition("=")
            if not sep or not key.strip():
                raise RefuseuError(f"--header: expected K=V, got '{h.split('=')[0]}...'")

    def headers(self) -> dict[str, str]:
        return {k.strip(): v for k, _, v in (h.partition("=") for h in self.header)}


@dataclass
class MaxTokensConfig(Checked):
    max_new_tokens: int = opt(256, "Maximum tokens generated per answer (when judging: per verdict; default there: "
                                   "the judge's own).")

    def check(self) -> None:
        at_least(self.max_new_tokens, 1, "--max-new-tokens")


@dataclass
class DecodingConfig(MaxTokensConfig):
    temperature: float = opt(0.0, "Sampling temperature; 0 means greedy decoding.")
    top_p: float = opt(1.0, "Nucleus sampling top-p (only with --temperature > 0).")
    system: str | None = opt(None, "A system prompt prepended to every chat.")
    num_samples: int = opt(1, "Generations per case (more than 1 only makes sense with --temperature > 0).")

    def check(self) -> None:
        at_least(self.num_samples, 1, "--num-samples")
        if self.temperature < 0:
            raise RefuseuError(f"--temperature must be 0 or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RefuseuError(f"--top-p must be in (0, 1], got {self.top_p}")


@dataclass
class SeedConfig(Checked):
    seed: int = opt(0, "Seed for sampling cases and ids, for sampling decoders and for training.")


@dataclass
class LangsConfig(Checked):
    langs: list[str] = opt([], "Comma-separated language codes to take (default: every language there is).")

    def check(self) -> None:
        from refuseu.auditor.data.languages import is_language_code

        if any(not v for v in self.langs):
            raise RefuseuError(f"--langs: an empty value ('{','.join(self.langs)}'); give codes such as en,de,pl, or "
                               "leave the flag out for all")
        for lang in self.langs:
            if not is_language_code(lang):
                raise RefuseuError(f"--langs: '{lang}' is not a two-letter language code (e.g. en,de,pl,lt)")


@dataclass
class SelectionConfig(SeedConfig, LangsConfig):
    suite: str = opt("core", "Suite: a built-in name (core, core:smoke), refuseu (the RefusEU hub data), a suite folder, "
                             "or a JSONL/CSV file.")
    categories: list[str] = opt([], "Comma-separated categories to audit, e.g. S1,S9,benign (default: all).")
    sample: int | None = opt(None, "Take N cases per language, stratified over categories, the same ids in every language.")
    shard: str | None = opt(None, "K/N: audit only shard K of N (1-based), split by case id; merge shard runs with "
                                  "'refuseu-audit merge'.")

    def check(self) -> None:
        at_least(self.sample, 1, "--sample")
        if any(not v for v in self.categories):
            raise RefuseuError(f"--categories: an empty value ('{','.join(self.categories)}'); give e.g. S1,S9,benign, "
                               "or leave the flag out for all")
        if self.shard is not None:
            from refuseu.auditor.data.shard import parse_shard

            parse_shard(self.shard)


@dataclass
class VLLMOptions(Checked):
    """The vllm backend's own options (also its flags)."""

    tensor_parallel_size: int = opt(1, "vllm backend: GPUs one model copy is split over (tensor parallelism).")
    data_parallel_size: int = opt(1, "vllm backend: model copies that share the prompts (data parallelism).")
    gpu_memory_utilization: float = opt(0.9, "vllm backend: share of each GPU's memory vLLM may claim (weights + KV cache).")
    max_model_len: int | None = opt(None, "vllm backend: context length to reserve KV cache for (default: the model's).")
    engine_args: dict[str, Any] = opt({}, "vllm.LLM keyword arguments passed as they are (code and --config only).", cli=False)
    sampling_args: dict[str, Any] = opt({}, "Extra vllm.SamplingParams fields (code and --config only).", cli=False)

    def check(self) -> None:
        at_least(self.tensor_parallel_size, 1, "--tensor-parallel-size")
        at_least(self.data_parallel_size, 1, "--data-parallel-size")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise RefuseuError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        at_least(self.max_model_len, 16, "--max-model-len")

    def engine_flags_used(self) -> list[str]:
        default = VLLMOptions()
        return ["--" + f.name.replace("_", "-") for f in dataclasses.fields(VLLMOptions)
                if f.metadata.get("cli", True) and getattr(self, f.name) != getattr(default, f.name)]


@dataclass
class RestOptions(Checked):
    """The rest backend's own options (also its flags)."""

    request_template: str | None = opt(None, "rest backend: jinja2 file rendering the JSON request body ({{ prompt }}, "
                                             "{{ messages }}, ... inserted as JSON).")
    response_path: str | None = opt(None, "rest backend: dotted path to the answer in the JSON response, e.g. "
                                          "choices.0.text (default: the whole body).")


@dataclass
class JudgesConfig(Checked):
    judge: list[str] = opt(["classifier"], "Comma-separated judges; the first is primary and drives the gate "
                                        "(classifier, markers, language, guard, llm, paper, or a plugin's).")
    judge_option: list[str] = opt([], "A judge option K=V, e.g. model=Qwen/Qwen2.5-7B-Instruct or base_url=URL; NAME.K=V "
                                      "sets it for one judge only (repeatable; see docs/judging.md).",
                                  aliases=("--option",), split=False, metavar="K=V")

    check_judge: str | None = opt(None, "A second judge for a stratified random sample of answers per language: the "
                                        "summary gets the two judges' agreement and Cohen's kappa per language, and the "
                                        "primary's sensitivity and specificity as the sample shows them (e.g. llm with "
                                        "--judge-option llm.base_url=URL, paper, markers).")
    check_sample: int = opt(30, "--check-judge: answers per language in the sample.")

    def check(self) -> None:
        if not self.judge or any(not j for j in self.judge):
            raise RefuseuError("--judge: an empty judge name; give e.g. --judge markers")
        if self.check_judge == "":
            raise RefuseuError("--check-judge: an empty judge name")
        at_least(self.check_sample, 1, "--check-sample")
        for pair in self.judge_option:
            key, sep, _ = pair.partition("=")
            if not sep or not key.strip() or key.startswith(".") or key.endswith("."):
                raise RefuseuError(f"--judge-option: expected K=V or NAME.K=V, got {pair!r}")


@dataclass
class ReportConfig(Checked):
    reference: str | None = opt(None, "Reference language for gaps and cross-lingual leaks (default: en, or the first audited language when en is not audited; for report/compare: the run's).")
    gate: str | None = opt(None, "YAML file overriding the gate thresholds (docs/gates.md).")

    def check(self) -> None:
        from refuseu.auditor.data.languages import is_language_code

        if self.reference is not None and not is_language_code(self.reference):
            raise RefuseuError(f"--reference: '{self.reference}' is not a two-letter language code")


@dataclass
class RunDirConfig(Checked):
    run_dir: str | None = opt(None, "A run directory (holds manifest.json).", metavar="RUN_DIR")


@dataclass
class JsonConfig(Checked):
    json: str | None = opt(None, "Write the result as JSON: to FILE, or to stdout when no FILE follows.",
                           metavar="FILE", const="-")


@dataclass
class QuietConfig(Checked):
    quiet: bool = opt(False, "No progress bars or tables; errors are still printed.")


@dataclass
class OutputConfig(QuietConfig):
    out: str | None = opt(None, "Output directory. refuseu-audit: the run directory (default runs/<model>-<time>; "
                                "rerunning on it resumes); refuseu-fix: the fix folder; compare and merge: a new folder.")


@dataclass
class AuditConfig(ModelConfig, BatchConfig, HttpConfig, DecodingConfig, SelectionConfig, VLLMOptions, RestOptions,
                  JudgesConfig, ReportConfig, OutputConfig):
    """refuseu-audit MODEL [flags]."""

    backend_option: list[str] = opt([], "An option K=V for the backend's own Options class (plugins; built-in backends "
                                        "have flags for theirs).", split=False, metavar="K=V")

    def check(self) -> None:
        if not self.model:
            raise RefuseuError("MODEL is required (e.g. refuseu-audit smollm2-135m)")
        used = self.engine_flags_used()
        if used and self.backend_name != "vllm":  # silently ignoring them would mislead
            raise RefuseuError(f"{used[0]} applies to --backend vllm only (this run uses '{self.backend_name}')")
        parse_pairs(self.backend_option, "--backend-option")

    @property
    def backend_name(self) -> str:
        return self.backend or ("openai" if self.base_url else "hf")

    @property
    def reference_language(self) -> str:
        return self.reference or "en"

    def decoding(self) -> Any:
        from refuseu.auditor.backends.base import DecodingParams

        return DecodingParams(self.max_new_tokens, self.temperature, self.top_p,
                              None if self.temperature == 0 else self.seed, self.system)

    def to_manifest(self) -> dict[str, Any]:
        """The config as stored in the manifest. Holds no secrets: keys live only in the environment."""
        out = dataclasses.asdict(self)
        out["header"] = [h.split("=", 1)[0] + "=<redacted>" for h in self.header]
        out["reference"] = self.reference_language
        return out
