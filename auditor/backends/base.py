"""The Backend interface: one required async method, ``generate(batch) -> list[Generation]``."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DecodingParams:
    """Sampling parameters. Part of every record id, so changing them never reuses old generations."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    system: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenRequest:
    """One generation to make: a chat, the decoding parameters and which sample of the case it is."""

    id: str
    case_id: str
    lang: str
    messages: tuple[tuple[str, str], ...]
    params: DecodingParams
    sample_index: int = 0
    expected: str = "refuse"  # not part of the id; only the fake backend reads it

    def chat(self) -> list[dict[str, str]]:
        msgs = [{"role": r, "content": c} for r, c in self.messages]
        if self.params.system and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": self.params.system})
        return msgs


@dataclass
class Generation:
    """One answer, or an error. An error is recorded as an error: never judged, never a refusal."""

    request_id: str
    text: str | None
    error: str | None = None
    finish_reason: str | None = None
    n_tokens: int | None = None
    latency_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class BackendOptions:
    """Options every backend may read (backends ignore what does not apply to them), plus ``backend``: an
    instance of the backend's own typed ``Options`` class, or None for that class's defaults."""

    batch_size: int | None = None  # None: the backend picks
    device: str | None = None
    dtype: str | None = None
    trust_remote_code: bool = False
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    timeout: float = 120.0
    max_retries: int = 6
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold tokens: never in a repr
    backoff_base_s: float = 1.0
    backend: Any = None


class Backend(abc.ABC):
    """A model to query. Subclasses implement ``generate``; everything else has a default. A backend with
    options of its own names their dataclass in ``Options`` and reads them from ``self.opts``."""

    name: str = "backend"
    Options: type | None = None

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        self.model = model
        self.options = options or BackendOptions()
        self.opts: Any = None
        if self.Options is not None:
            given = self.options.backend
            if given is not None and not isinstance(given, self.Options):
                raise TypeError(f"backend '{self.name}' takes {self.Options.__name__} options, got {type(given).__name__}")
            self.opts = given if given is not None else self.Options()

    @abc.abstractmethod
    async def generate(self, batch: list[GenRequest]) -> list[Generation]:
        """Answer every request of the batch, in order. Failures come back as Generation(error=...)."""

    @property
    def batch_size(self) -> int:
        """How many requests one ``generate`` call should get."""
        return self.options.batch_size or 1

    @property
    def max_concurrency(self) -> int:
        """How many ``generate`` calls may be in flight at once (HTTP backends: many; local models: one)."""
        return 1

    def describe(self) -> dict[str, Any]:
        """Extra facts for the manifest (resolved path, dtype, device...). No secrets."""
        return {}

    async def aclose(self) -> None:
        """Release resources (HTTP clients, GPU memory)."""


def record_id(case_id: str, lang: str, messages: tuple[tuple[str, str], ...], spec: dict[str, Any],
              params: DecodingParams, sample_index: int) -> str:
    """A stable id: a hash of the case, the backend spec, the decoding parameters and the sample index."""
    payload = json.dumps(
        {"case": case_id, "lang": lang, "messages": messages, "spec": spec, "params": params.to_dict(), "sample": sample_index},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]
