"""A small real HTTP/1.1 server for the HTTP backend tests and bench/http_throughput.py.

It speaks three dialects: OpenAI Chat Completions (POST /v1/chat/completions), Anthropic Messages
(POST /v1/messages) and a plain gateway (POST /generate -> {"choices": [{"text": ...}]}). It answers after a
fixed latency and can inject faults on the first attempt of every distinct request body (keyed by the body's
hash): 429 with Retry-After, 500, a slow answer past the client's timeout, malformed JSON, or a dropped
connection. Written on raw asyncio streams because a framework cannot drop a connection mid-request.

Run alone: ``python tests/http_servers.py --latency 0.25`` prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure. Step 1: [omitted]. Step 2: [omitted]."
FAULTS = ("429", "500", "slow", "malformed", "drop")
# More faults (issue 14), used with ServerConfig.always: "error200" (a 200 whose body is an error object), "huge"
# (a 10 MB body), "hang" (the connection is accepted and never answered).
HUGE_BYTES = 10 * 1024 * 1024


@dataclass
class ServerConfig:
    latency: float = 0.0
    faults: tuple[str, ...] = ()  # cycled over request bodies on their first attempt
    always: str | None = None  # a fault injected on every attempt (e.g. "500")
    slow_s: float = 3.0
    retry_after: str = "1"
    echo_headers_400: bool = False  # a 400 whose body echoes every request header (redaction test)


@dataclass
class ServerState:
    seen: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    auth_headers: list[str] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def answer_text(body: dict[str, Any]) -> str:
    """A deterministic stand-in model: refuses about half the prompts, by a hash of the text."""
    digest = hashlib.sha256(json.dumps(body.get("messages") or body.get("prompt"), sort_keys=True).encode()).digest()
    return REFUSAL if digest[0] % 2 == 0 else COMPLIANCE


def dialect_body(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "output_tokens": len(text.split())}}
    if path.endswith("/chat/completions"):
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 20}}
    return {"choices": [{"text": text}]}


class StubServer:
    """Serves on 127.0.0.1 with a free port, in a background thread with its own event loop."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.state = ServerState()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StubServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.state.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False closes the connection."""
        request_line = await reader.readline()
        if not request_line:
            return False
        _, path, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        auth = headers.get("authorization") or headers.get("x-api-key")
        if auth:
            self.state.auth_headers.append(auth)
        key = hashlib.sha256(raw).hexdigest()
        attempt = self.state.seen[key]
        self.state.seen[key] += 1
        fault = self.config.always
        if fault is None and attempt == 0 and self.config.faults:
            fault = self.config.faults[int(key[:8], 16) % len(self.config.faults)]
        self.state.in_flight += 1
        self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
        try:
            if self.config.latency:
                await asyncio.sleep(self.config.latency)
            return await self._respond(writer, path, raw, fault, headers)
        finally:
            self.state.in_flight -= 1

    async def _respond(self, writer: asyncio.StreamWriter, path: str, raw: bytes, fault: str | None,
                       headers: dict[str, str]) -> bool:
        self.state.outcomes[fault or "ok"] += 1
        if fault == "hang":
            await asyncio.sleep(3600)  # cancelled when the server stops
            return False
        if fault == "error200":
            await self._send(writer, 200, b'{"error": {"message": "upstream model overloaded", "type": "server_error"}}')
            return True
        if fault == "huge":
            chunk = b'{"choices": [{"message": {"content": "' + b"x" * (HUGE_BYTES - 64) + b'"}}]}'
            await self._send(writer, 200, chunk)
            return True
        if fault == "drop":
            writer.transport.abort()  # no response at all: the client sees the connection die
            return False
        if fault == "slow":
            await asyncio.sleep(self.config.slow_s)
        if fault == "429":
            await self._send(writer, 429, b'{"error": {"message": "rate limited"}}', {"Retry-After": self.config.retry_after})
            return True
        if fault == "500":
            await self._send(writer, 500, b'{"error": {"message": "internal error"}}')
            return True
        if fault == "malformed":
            await self._send(writer, 200, b'{"choices": [{"message": {"content": "trunc')
            return True
        if fault == "307":
            await self._send(writer, 307, b"", {"Location": "https://elsewhere.invalid/v1/chat/completions"})
            return True
        if fault == "401":
            await self._send(writer, 401, b'{"error": {"message": "invalid api key"}}')
            return True
        if self.config.echo_headers_400:
            await self._send(writer, 400, json.dumps({"error": "bad request", "auth": headers.get("authorization"),
                                                           "token": headers.get("x-gateway-token"), "all": headers}).encode())
            return True
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await self._send(writer, 400, b'{"error": "body is not JSON"}')
            return True
        await self._send(writer, 200, json.dumps(dialect_body(path, body, answer_text(body))).encode())
        return True

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: bytes,
                    extra: dict[str, str] | None = None) -> None:
        reason = HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.25)
    args = parser.parse_args()

    async def serve() -> None:
        server = StubServer(ServerConfig(latency=args.latency))
        srv = await asyncio.start_server(server._handle, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
