"""Typed configuration. CLI flags are generated from the dataclass fields (help on every field); a
``--config`` YAML supplies defaults, and flags given on the command line override it."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from refuseu.auditor.errors import RefuseuError

T = TypeVar("T")
NO_COMMA_SPLIT = {"header"}  # values may hold commas


def opt(default: Any, help: str, *, flag: str | None = None, positional: bool = False, secret: bool = False) -> Any:
    meta = {"help": help, "flag": flag, "positional": positional, "secret": secret}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class AuditConfig:
    model: str = opt("", "MODEL: a built-in alias (smollm2-135m), a local folder, a .gguf file or a hub id.", positional=True)
    backend: str | None = opt(None, "Backend: hf (default), fake, or an HTTP/vLLM backend where installed. --base-url alone selects openai.")
    suite: str = opt("core", "Suite: a built-in name (core, core:smoke), a suite folder, or a JSONL/CSV file.")
    langs: list[str] = opt([], "Comma-separated language codes to audit (default: every language of the suite).")
    categories: list[str] = opt([], "Comma-separated categories to audit, e.g. S1,S9,benign (default: all).")
    sample: int | None = opt(None, "Take N cases per language, stratified over categories, the same ids in every language.")
    seed: int = opt(0, "Seed for --sample and for sampling decoders.")
    num_samples: int = opt(1, "Generations per case (more than 1 only makes sense with --temperature > 0).")
    out: str | None = opt(None, "Run directory (default runs/<model-slug>-<timestamp>). Rerunning on the same directory resumes.")
    judge: list[str] = opt(["markers"], "Comma-separated judges; the first is primary and drives the gate.")
    reference: str = opt("en", "Reference language for gaps and cross-lingual leaks.")
    gate: str | None = opt(None, "YAML file overriding the gate thresholds (see docs/gates.md).")
    max_new_tokens: int = opt(256, "Maximum tokens generated per answer.")
    temperature: float = opt(0.0, "Sampling temperature; 0 means greedy decoding.")
    top_p: float = opt(1.0, "Nucleus sampling top-p (only with --temperature > 0).")
    system: str | None = opt(None, "A system prompt prepended to every chat.")
    batch_size: int | None = opt(None, "Prompts per generate call (default: picked by the backend).")
    device: str | None = opt(None, "Device for local models (default: cuda if available, else cpu).")
    dtype: str | None = opt(None, "Weights dtype for local models (default: bfloat16 on GPU, float32 on CPU).")
    trust_remote_code: bool = opt(False, "Allow model repositories to run their own code (off by default).")
    base_url: str | None = opt(None, "Base URL of an HTTP endpoint (selects the openai backend unless --backend says otherwise).")
    api_key_env: str | None = opt(None, "Environment variable holding the API key (never stored or printed).")
    concurrency: int = opt(16, "Concurrent HTTP requests.")
    rpm: float | None = opt(None, "Cap on HTTP requests per minute.")
    timeout: float = opt(120.0, "Per-request HTTP timeout in seconds.")
    max_retries: int = opt(6, "Retries per HTTP request on 429, 5xx, timeouts and malformed bodies.")
    header: list[str] = opt([], "Extra HTTP header K=V (repeatable; in --config also a mapping). ${VAR} in V reads the environment.")
    request_template: str | None = opt(None, "rest backend: jinja2 file rendering the JSON request body ({{ prompt }}, {{ messages }}, ... inserted as JSON).")
    response_path: str | None = opt(None, "rest backend: dotted path to the answer in the JSON response, e.g. choices.0.text (default: the whole body).")
    tensor_parallel_size: int = opt(1, "vllm backend: GPUs one model copy is split over (tensor parallelism).")
    data_parallel_size: int = opt(1, "vllm backend: model copies that share the prompts (data parallelism).")
    gpu_memory_utilization: float = opt(0.9, "vllm backend: share of each GPU's memory vLLM may claim (weights + KV cache).")
    max_model_len: int | None = opt(None, "vllm backend: context length to reserve KV cache for (default: the model's).")
    shard: str | None = opt(None, "K/N: audit only shard K of N (1-based), split by case id; merge shard runs with 'refuseu-audit merge'.")
    quiet: bool = opt(False, "No progress bars or tables; errors are still printed.")

    def decoding(self) -> Any:
        from refuseu.auditor.backends.base import DecodingParams

        return DecodingParams(self.max_new_tokens, self.temperature, self.top_p, None if self.temperature == 0 else self.seed, self.system)

    def to_manifest(self) -> dict[str, Any]:
        """The config as stored in the manifest. Holds no secrets: keys live only in the environment."""
        out = dataclasses.asdict(self)
        out["header"] = [h.split("=", 1)[0] + "=<redacted>" for h in self.header]
        return out


def load_yaml_mapping(path: str | Path, flag: str, what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every failure is one line naming the flag or the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise RefuseuError(f"{flag}: file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise RefuseuError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RefuseuError(f"{path}: must be a mapping of {what}")
    return data


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) of a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        tp, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        helptext = meta.get("help", "")
        if meta.get("positional"):
            parser.add_argument(f.name, help=helptext, metavar=f.name.upper())
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", default=argparse.SUPPRESS, help=helptext)
        elif typing.get_origin(tp) is list:
            parser.add_argument(flag, dest=f.name, action="append", default=argparse.SUPPRESS,
                                help=f"{helptext} (default: {','.join(map(str, default)) or 'all'})")
        else:
            parser.add_argument(flag, dest=f.name, type=tp, default=argparse.SUPPRESS,
                                help=f"{helptext} (default: {default})")


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    tp, optional = _base_type(hints[name])
    if value is None:
        if optional:
            return None
        raise RefuseuError(f"{source}: field '{name}' may not be null")
    if typing.get_origin(tp) is list:
        if isinstance(value, dict):  # e.g. header: {X-Team: audit} in a --config file
            value = [f"{k}={v}" for k, v in value.items()]
        items = value if isinstance(value, list) else [value]
        flat: list[str] = []
        for item in items:
            if name in NO_COMMA_SPLIT:
                flat.append(str(item))
            else:
                flat.extend(s.strip() for s in str(item).split(",") if s.strip())
        return flat
    try:
        if tp is bool and isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return tp(value)
    except (TypeError, ValueError):
        raise RefuseuError(f"{source}: field '{name}' must be {getattr(tp, '__name__', tp)}, got {value!r}") from None


def build_config(cls: type[T], args: dict[str, Any], config_file: str | None) -> T:
    """Dataclass defaults < --config YAML < explicit flags."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if config_file:
        loaded = load_yaml_mapping(config_file, "--config", "option: value")
        for key, value in loaded.items():
            name = str(key).replace("-", "_")
            if name not in names:
                raise RefuseuError(f"{config_file}: unknown field '{key}'")
            values[name] = _coerce(cls, name, value, config_file)
    for name, value in args.items():
        if name in names:
            values[name] = _coerce(cls, name, value, f"--{name.replace('_', '-')}")
    return cls(**values)
