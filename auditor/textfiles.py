"""Reading the files users hand us (suites, judge input, gate and config YAML, merge inputs, templates) with
care: a file that is not UTF-8 is one error line naming the file, the line and the byte offset, never a
traceback. Lines are split on ``\\n`` alone: ``str.splitlines`` would also split inside a record on
characters such as U+2028 or U+0085, which JSON strings may hold unescaped."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError


def _open_error(path: Path, what: str | None, exc: OSError) -> RefuseuError:
    where = f"{what}: " if what else ""
    if isinstance(exc, FileNotFoundError):
        return RefuseuError(f"{where}file not found: {path}")
    if isinstance(exc, IsADirectoryError):
        return RefuseuError(f"{where}{path} is a directory, expected a file")
    return RefuseuError(f"{where}cannot read {path}: {exc.strerror or type(exc).__name__}")


def not_utf8(path: str | Path, data: bytes, offset: int, line_start: int = 0, line: int | None = None) -> RefuseuError:
    """The error for undecodable bytes at ``offset`` of the file (``data`` holds the bytes from ``line_start``)."""
    if line is None:
        line = data.count(b"\n", 0, offset - line_start) + 1
    bad = data[offset - line_start:offset - line_start + 4].hex(" ")
    return RefuseuError(f"{path}:{line}: not UTF-8 text (byte offset {offset}: {bad}); save the file as UTF-8")


def decode(data: bytes, path: str | Path) -> str:
    """UTF-8 (a leading byte-order mark is allowed) or one clear error."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, data[start:], start + exc.start, start) from None


def read_text(path: str | Path, what: str | None = None) -> str:
    """A whole text file, decoded with care. ``what`` names the flag the path came from, for the error."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise _open_error(p, what, exc) from None
    return decode(data, p)


def iter_lines(path: str | Path, what: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every line, streamed; undecodable bytes are an error that
    names the line and the byte offset."""
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise _open_error(p, what, exc) from None
    with fh:
        offset = 0
        for n, raw in enumerate(fh, start=1):
            body = raw[3:] if n == 1 and raw.startswith(codecs.BOM_UTF8) else raw
            skip = len(raw) - len(body)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(p, raw, offset + skip + exc.start, offset, n) from None
            offset += len(raw)
            yield n, text[:-1] if text.endswith("\n") else text


def iter_jsonl(path: str | Path, what: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file; a line that is not a JSON object is an
    error naming the file, the line and the column."""
    import json

    from refuseu.auditor.errors import SuiteError

    for n, line in iter_lines(path, what):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(str(path), n, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(rec, dict):
            raise SuiteError(str(path), n, None, f"expected a JSON object, got {type(rec).__name__}")
        yield n, rec


def yaml_error(where: str | Path, exc: Exception) -> RefuseuError:
    """One line for a YAML syntax error: ``file:line: invalid YAML: problem`` (PyYAML's own message spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    place = f"{where}:{mark.line + 1}" if mark is not None else str(where)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["unreadable"])[0]
    return RefuseuError(f"{place}: invalid YAML: {' '.join(str(problem).split())}")
