"""RunStore: one run directory. Records are appended and flushed one line at a time, so a killed run
loses at most what was in flight, and a rerun skips every id already stored.

What a run directory survives:
- a kill at any byte of an append: the next append first repairs the file (a torn last line is cut back to the
  last newline and redone; a complete last record that only lost its newline keeps it), and readers skip a torn
  tail, so every command keeps working on the run;
- two processes on one directory: the second one stops at once with exit 2, naming the holder of the lock (an
  ``fcntl`` lock on RUN/.lock, which dies with its process, so a killed run never leaves a stale lock);
- a power loss: records are flushed line by line and fsynced once per appended batch, and whole files (the
  manifest, summary.json, the report) are written to a temp file, fsynced and renamed. At most the batch in
  flight is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GENERATIONS = "generations.jsonl"
VERDICTS = "verdicts.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"
LOCK = ".lock"


def now() -> str:
    """A UTC timestamp for manifests and records."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file and rename, so a reader never sees half a file."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a whole file via a temp file, fsync and rename: a reader (or a kill -9) sees the old file or the
    new one, never half of one. The file gets the usual permissions (mkstemp's are owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _complete_record(raw: bytes) -> dict[str, Any] | None:
    """The record in a line that lost only its newline, or None for a torn fragment."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and "id" in rec else None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read records. A torn last line (a run killed mid-write) is skipped and redone; any other bad line is an
    error naming the file and line."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty unless the last write was cut short
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RefuseuError(f"{path}:{n}: not UTF-8 text (byte {exc.start} of the line)") from None
        except json.JSONDecodeError as exc:
            raise RefuseuError(f"{path}:{n}: invalid JSON record: {exc.msg}") from None
        if not isinstance(rec, dict) or "id" not in rec:
            raise RefuseuError(f"{path}:{n}: field 'id' is missing")
        yield rec
    if tail.strip():
        rec = _complete_record(tail)
        if rec is not None:
            yield rec


def repair_tail(path: Path) -> int:
    """Make the file end on a newline before anything is appended: a torn last line is cut back to the last
    newline (its record is redone); a complete record that only lost its newline gets it back. Returns the
    number of bytes dropped."""
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        start, chunk = size, 1 << 16
        cut = 0
        while start > 0:  # find the last newline, reading backwards
            start = max(0, start - chunk)
            fh.seek(start)
            block = fh.read(size - start)
            i = block.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
        fh.seek(cut)
        if _complete_record(fh.read(size - cut)) is not None:
            fh.seek(size)
            fh.write(b"\n")
            return 0
        fh.truncate(cut)
        return size - cut


_LOCKS: dict[Path, list[int]] = {}  # run directory -> [file descriptor, depth], for this process


class RunStore:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    # -- paths
    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def generations_path(self) -> Path:
        return self.dir / GENERATIONS

    def verdicts_path(self, judge: str | None = None) -> Path:
        """The primary judge writes ``verdicts.jsonl``; others ``verdicts.<judge>.jsonl``."""
        primary = self.read_manifest().get("judge") if self.manifest_path.exists() else None
        if judge is None or judge == primary:
            return self.dir / VERDICTS
        return self.dir / f"verdicts.{judge}.jsonl"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    # -- manifest
    def read_manifest(self) -> dict[str, Any]:
        try:
            from refuseu.auditor.textfiles import read_text

            return json.loads(read_text(self.manifest_path))  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise RefuseuError(f"{self.dir} is not a refuseu run directory (no {MANIFEST})") from None
        except json.JSONDecodeError as exc:
            raise RefuseuError(f"{self.manifest_path}: invalid JSON: {exc.msg}") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    # -- the lock
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory for this process (re-entrant within it). Another process that wants it gets
        one error line at once, naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): run unlocked
            yield
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        key = self.dir.resolve()
        held = _LOCKS.get(key)
        if held is not None:
            held[1] += 1
            try:
                yield
            finally:
                held[1] -= 1
            return
        path = self.dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise RefuseuError(f"{self.dir} is in use by another refuseu process ({holder}); wait for it to finish "
                               "or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {now()}".encode())
        _LOCKS[key] = [fd, 1]
        try:
            yield
        finally:
            _LOCKS.pop(key, None)
            os.close(fd)  # closing the descriptor releases the lock

    # -- records
    def append(self, path: Path, records: list[dict[str, Any]]) -> None:
        """Append records, one flushed line each, after repairing a torn tail; fsync once per call."""
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        with path.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
            os.fsync(fh.fileno())

    def append_generations(self, records: list[dict[str, Any]]) -> None:
        self.append(self.generations_path, records)

    def append_verdicts(self, records: list[dict[str, Any]], judge: str | None = None) -> None:
        self.append(self.verdicts_path(judge), records)

    def generations(self) -> dict[str, dict[str, Any]]:
        """id -> latest record (a retried error is superseded by its later success)."""
        return {rec["id"]: rec for rec in read_jsonl(self.generations_path)}

    def verdicts(self, judge: str | None = None) -> dict[str, dict[str, Any]]:
        out = {}
        for rec in read_jsonl(self.verdicts_path(judge)):
            if "outcome" not in rec and isinstance(rec.get("refusal"), str):  # format 1 named the outcome "refusal"
                rec["outcome"] = rec.pop("refusal")
            out[rec["id"]] = rec
        return out

    def judges_present(self) -> list[str]:
        """Judge ids that have verdict files in this run, primary first."""
        out = []
        if (self.dir / VERDICTS).exists():
            out.append(self.read_manifest().get("judge", "markers"))
        for p in sorted(self.dir.glob("verdicts.*.jsonl")):
            out.append(p.name[len("verdicts."):-len(".jsonl")])
        return out
