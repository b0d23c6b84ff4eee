"""The one HTTP wrapper behind the openai, anthropic and rest backends.

Retries, rate limits, concurrency, timeouts, secrets and redaction live here and nowhere else. A concrete
backend supplies three pure pieces: ``build_request`` (GenRequest -> HTTPRequest), ``parse_response``
(decoded body -> Parsed) and ``auth_headers`` (key -> headers). Everything between them is this module:
one shared ``httpx.AsyncClient`` with a pool sized to ``--concurrency``, an ``--rpm`` limiter, a per-request
``--timeout``, and retries with exponential backoff and jitter on 429, 5xx, timeouts, dropped connections
and malformed bodies, honouring ``Retry-After``. An answer that still fails becomes an error record.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from refuseu.auditor.backends.base import Backend, BackendOptions, Generation, GenRequest
from refuseu.auditor.errors import RefuseuError

# 408/409/425 are transient by definition; 429 is a rate limit; 5xx (and Anthropic's 529) are server trouble.
RETRYABLE_STATUS = {408, 409, 425, 429}
# A bad key, a forbidden model or a wrong URL fails every request alike: stop the run with one clear line
# instead of storing thousands of identical error records.
FATAL_STATUS = {401, 403, 404, 407}
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 300.0
EXCERPT_CHARS = 200
MAX_BODY_BYTES = 8 * 1024 * 1024  # a larger body is not an answer: stop reading, so memory stays bounded
REDACTED = "<redacted>"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MalformedResponse(ValueError):
    """The body arrived but does not hold an answer where it should. Retried like a 5xx."""


@dataclass(frozen=True)
class HTTPRequest:
    """What one call sends. ``headers`` holds only non-secret, request-specific headers."""

    url: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True)
class Parsed:
    """The answer pulled out of a response body."""

    text: str
    finish_reason: str | None = None
    n_tokens: int | None = None


class Redactor:
    """Replaces every known secret value in a string. Applied to everything this module lets out."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a key that contains another secret is removed whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def expand_env(value: str, what: str) -> str:
    """``${VAR}`` in a header value reads the environment, so keys never need to sit on a command line."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise RefuseuError(f"{what}: environment variable {m.group(1)} is not set")
        return os.environ[m.group(1)]

    return _ENV_REF.sub(sub, value)


def resolve_api_key(options: BackendOptions, default_env: str | None, required: bool, backend: str) -> str | None:
    """The key from --api-key-env (or the backend's default variable). Only ever read, never stored."""
    if options.api_key_env:
        key = os.environ.get(options.api_key_env)
        if not key:
            raise RefuseuError(f"--api-key-env: environment variable {options.api_key_env} is not set")
        return key
    key = os.environ.get(default_env) if default_env else None
    if required and not key:
        raise RefuseuError(f"the {backend} backend needs an API key: export {default_env}=... "
                           "(or name another variable with --api-key-env)")
    return key or None


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), capped."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return min(RETRY_AFTER_CAP_S, max(0.0, float(raw_ms) / 1000))
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(raw)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(RETRY_AFTER_CAP_S, max(0.0, when - (time.time() if now is None else now)))


def backoff_delay(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Exponential backoff with equal jitter: at least half the step, so retries never stampede at zero."""
    step = min(cap, base * 2 ** attempt)
    return random.uniform(step / 2, step)


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


async def read_capped(resp: Any, limit: int) -> tuple[bytes, bool]:
    """The body, read as it streams in, up to ``limit`` bytes; (what was read, whether it was cut)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"", True
    return b"".join(chunks), False


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def http_client_module() -> Any:
    """httpx2 where installed (the maintained httpx line; the openai SDK's default), else httpx: same API.
    httpx 0.28's pool (httpcore 1.0) stalls past ~48 concurrent requests (encode/httpx#3215): at 64 it
    reached 13% of the ideal rate in bench/http_throughput.py, httpx2 over 80%."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        import httpx

        return httpx


class RateLimiter:
    """Spaces request starts evenly at 60/rpm seconds. Retries count: the provider counts them too."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_slot = 0.0

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval  # no await between read and write: safe without a lock
        if slot > now:
            await asyncio.sleep(slot - now)


class HTTPBackend(Backend):
    """Base of every HTTP backend. Subclasses set the defaults and implement the three pure methods."""

    name = "http"
    default_base_url: str | None = None
    default_key_env: str | None = None
    json_response = True  # decode the body as JSON before parse_response

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        httpx = http_client_module()
        self._httpx = httpx
        opts = self.options
        if opts.concurrency < 1:
            raise RefuseuError(f"--concurrency must be at least 1, got {opts.concurrency}")
        if opts.timeout <= 0:
            raise RefuseuError(f"--timeout must be positive, got {opts.timeout}")
        if opts.max_retries < 0:
            raise RefuseuError(f"--max-retries must be 0 or more, got {opts.max_retries}")
        if opts.rpm is not None and opts.rpm <= 0:
            raise RefuseuError(f"--rpm must be positive, got {opts.rpm}")
        base = opts.base_url or self.default_base_url
        if not base:
            raise RefuseuError(f"the {self.name} backend needs --base-url")
        if urlsplit(base).scheme not in ("http", "https"):
            raise RefuseuError(f"--base-url must start with http:// or https://, got '{base}'")
        self.base_url = base.rstrip("/")
        self.extra_headers = {k: expand_env(v, f"--header {k}") for k, v in opts.headers.items()}
        self._key = resolve_api_key(opts, self.default_key_env, self.key_required(), self.name)
        self.redact = Redactor([self._key, *self.extra_headers.values()])
        self.limiter = RateLimiter(opts.rpm)
        self.backoff_base = float(opts.backoff_base_s)
        self.stats = {"requests": 0, "retries": 0, "errors": 0}
        limits = httpx.Limits(max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency)
        # The total deadline is enforced around each call below; httpx's own timeout guards each phase.
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(opts.timeout), follow_redirects=False)

    # -- the three pure pieces a subclass provides
    def build_request(self, req: GenRequest) -> HTTPRequest:
        raise NotImplementedError

    def parse_response(self, data: Any) -> Parsed:
        raise NotImplementedError

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def key_required(self) -> bool:
        """A key is required when talking to the vendor's own endpoint; local servers usually need none."""
        return False

    # -- Backend interface
    @property
    def batch_size(self) -> int:
        return self.options.batch_size or 1

    @property
    def max_concurrency(self) -> int:
        return max(1, self.options.concurrency // self.batch_size)

    def describe(self) -> dict[str, Any]:
        """Endpoint facts for the manifest: header names and whether a key was found, never their values."""
        return {
            "endpoint": self.base_url,
            "concurrency": self.options.concurrency,
            "rpm": self.options.rpm,
            "timeout_s": self.options.timeout,
            "max_retries": self.options.max_retries,
            "api_key_env": self.options.api_key_env or self.default_key_env,
            "api_key": "set" if self._key else "not set",
            "headers": sorted(self.extra_headers),
            "http_client": f"{self._httpx.__name__} {getattr(self._httpx, '__version__', '?')}",
        }

    async def generate(self, batch: list[GenRequest]) -> list[Generation]:
        return list(await asyncio.gather(*(self.call(r) for r in batch)))

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:  # never let a default dataclass/attribute repr print headers
        return f"{type(self).__name__}(model={self.model!r}, endpoint={self.base_url!r})"

    # -- the wrapper
    def headers_for(self, request: HTTPRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers.update(self.auth_headers(self._key))
        headers.update(self.extra_headers)
        headers.update(request.headers)
        return headers

    async def call(self, req: GenRequest) -> Generation:
        """One request with retries. Returns an answer or an error record; raises only on fatal statuses."""
        request = self.build_request(req)
        headers = self.headers_for(request)
        httpx = self._httpx
        failure = "no attempt made"
        attempts = 0
        for attempt in range(self.options.max_retries + 1):
            await self.limiter.acquire()
            attempts += 1
            self.stats["requests"] += 1
            wait: float | None = None
            start = time.perf_counter()
            too_big = False
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation (Ctrl-C) that
                # lands as the response arrives, and the run would go on instead of stopping.
                async with asyncio.timeout(self.options.timeout):
                    async with self.client.stream(request.method, request.url, json=request.body,
                                                  headers=headers) as resp:
                        body, too_big = await read_capped(resp, MAX_BODY_BYTES)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                failure = f"timeout after {self.options.timeout:g}s"
            except httpx.RequestError as exc:  # connect/read/write errors, dropped connections, bad encodings
                failure = f"connection error: {type(exc).__name__}: {excerpt(self.redact(str(exc)))}"
            else:
                latency = time.perf_counter() - start
                status = resp.status_code
                text = body.decode(resp.encoding or "utf-8", errors="replace")
                if too_big:
                    failure = f"HTTP {status}: response body larger than {MAX_BODY_BYTES // (1024 * 1024)} MB, not read"
                    break  # the same request would send the same body again
                if 200 <= status < 300:
                    try:
                        data = json.loads(text) if self.json_response else text
                        parsed = self.parse_response(data)
                    except (ValueError, MalformedResponse) as exc:
                        failure = f"malformed response body: {excerpt(self.redact(str(exc)))}"
                    else:
                        extra = {"attempts": attempts} if attempts > 1 else {}
                        return Generation(req.id, parsed.text, finish_reason=parsed.finish_reason,
                                          n_tokens=parsed.n_tokens, latency_s=latency, extra=extra)
                else:
                    # Redact before cutting: a cut could leave half a key that no longer matches.
                    failure = f"HTTP {status} from {request.url}: {excerpt(self.redact(text))}"
                    if 300 <= status < 400:  # never replay a POST (and its key) to wherever a redirect points
                        raise RefuseuError(self.redact(
                            f"HTTP {status} from {request.url}: redirected to {resp.headers.get('location', '?')}; "
                            "pass the final URL as --base-url"))
                    if status in FATAL_STATUS:
                        raise RefuseuError(self.redact(self._fatal_hint(status, failure)))
                    if status not in RETRYABLE_STATUS and status < 500:
                        break  # a 400/413/422 for this prompt will not change on a retry
                    wait = parse_retry_after(resp.headers)
                    if wait is not None and wait > self.options.timeout:
                        failure += (f"; Retry-After {wait:g}s is longer than --timeout {self.options.timeout:g}s, "
                                    "so it was not retried now (rerun later to retry it)")
                        break
            if attempt == self.options.max_retries:
                break
            self.stats["retries"] += 1
            await asyncio.sleep(wait if wait is not None else backoff_delay(attempt, self.backoff_base))
        self.stats["errors"] += 1
        noun = "attempt" if attempts == 1 else "attempts"
        return Generation(req.id, None, error=self.redact(f"{failure} ({attempts} {noun})"),
                          extra={"attempts": attempts})

    def _fatal_hint(self, status: int, failure: str) -> str:
        if status in (401, 403, 407):
            env = self.options.api_key_env or self.default_key_env
            return f"{failure}. Check the API key (read from ${env})" if env else f"{failure}. Check the credentials"
        return f"{failure}. Check --base-url and the model name '{self.model}'"
