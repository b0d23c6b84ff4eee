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

# What a stored record must hold, checked on every read (a run directory can be edited by hand or come from
# another machine, as merge inputs do): field -> (allowed types, required). Other fields pass through.
_TEXT, _NUM = (str,), (int, float)
GENERATION_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_TEXT, True), "case_id": (_TEXT, True), "lang": (_TEXT, True), "category": (_TEXT, True),
    "style": (_TEXT, True), "expected": (_TEXT, True), "sample": ((int,), False), "messages": ((list,), False),
    "response": ((str, type(None)), False), "error": ((str, type(None)), False),
    "finish_reason": ((str, type(None)), False), "n_tokens": ((int, type(None)), False),
    "latency_s": ((int, float, type(None)), False),
}
VERDICT_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_TEXT, True), "judge": (_TEXT, False), "outcome": (_TEXT, True), "harmful": ((bool, type(None)), False),
    "response_lang": ((str, type(None)), False), "reason": ((str, type(None)), False),
    "p_refusal": ((int, float, type(None)), False),
}
_OPT_LIST = (list, type(None))
MANIFEST_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "model": (_TEXT, False), "backend": ((dict,), False), "suite": ((dict,), False), "selection": ((dict,), False),
    "n_requests": ((int,), False), "decoding": ((dict,), False), "judge": (_TEXT, False), "judges": (_OPT_LIST, False),
    "gate": ((dict, type(None)), False), "config": ((dict,), False), "status": ((str, type(None)), False),
    "created": ((str, type(None)), False), "updated": ((str, type(None)), False),
    "backend_info": ((dict, type(None)), False), "format_version": ((int,), False),
}
MANIFEST_PARTS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "suite": {"hash": (_TEXT, False), "full_hash": ((str, type(None)), False), "unsharded_hash": ((str, type(None)), False),
              "languages": (_OPT_LIST, False), "n_cases": ((int,), False), "name": ((str,), False)},
    "selection": {"langs": (_OPT_LIST, False), "categories": (_OPT_LIST, False), "styles": (_OPT_LIST, False),
                  "shard": ((str, type(None)), False), "sample": ((int, type(None)), False),
                  "seed": ((int, type(None)), False), "num_samples": ((int,), False)},
    "backend": {"backend": (_TEXT, False), "model": ((str, type(None)), False)},
}
_CHOICES = {"expected": ("refuse", "comply"), "outcome": ("refusal", "compliance", "partial", "unjudgeable")}


def check_record(rec: dict[str, Any], schema: dict[str, tuple[tuple[type, ...], bool]], where: str,
                 prefix: str = "") -> None:
    """One error line naming the file, line and field of the first field that breaks the schema."""
    for name, (types, required) in schema.items():
        field = prefix + name
        if name not in rec:
            if required:
                raise RefuseuError(f"{where}: field '{field}' is missing")
            continue
        value = rec[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise RefuseuError(f"{where}: field '{field}' has the wrong type ({type(value).__name__})")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise RefuseuError(f"{where}: field '{field}' must be one of {', '.join(_CHOICES[name])}, got {value!r}")


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
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """write_text_atomic for bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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


def read_jsonl(path: Path, schema: dict[str, tuple[tuple[type, ...], bool]] | None = None,
               upgrade: Any = None) -> Iterator[dict[str, Any]]:
    """Read records. A torn last line (a run killed mid-write) is skipped and redone; any other bad line is an
    error naming the file and line (and, with a ``schema``, the field). ``upgrade`` rewrites an older record
    format before it is checked."""
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
        if upgrade is not None:
            rec = upgrade(rec)
        if schema is not None:
            check_record(rec, schema, f"{path}:{n}")
        yield rec
    if tail.strip():
        rec = _complete_record(tail)
        if rec is not None:
            if upgrade is not None:
                rec = upgrade(rec)
            if schema is not None:
                check_record(rec, schema, f"{path}:{len(lines) + 1}")
            yield rec


def _upgrade_verdict(rec: dict[str, Any]) -> dict[str, Any]:
    if "outcome" not in rec and isinstance(rec.get("refusal"), str):  # format 1 named the outcome "refusal"
        rec["outcome"] = rec.pop("refusal")
    return rec


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

            manifest = json.loads(read_text(self.manifest_path))
        except FileNotFoundError:
            raise RefuseuError(f"{self.dir} is not a refuseu run directory (no {MANIFEST})") from None
        except json.JSONDecodeError as exc:
            raise RefuseuError(f"{self.manifest_path}: invalid JSON: {exc.msg}") from None
        if not isinstance(manifest, dict):
            raise RefuseuError(f"{self.manifest_path}: expected a JSON object, got {type(manifest).__name__}")
        check_record(manifest, MANIFEST_SCHEMA, str(self.manifest_path))
        for part, schema in MANIFEST_PARTS.items():
            if part in manifest:
                check_record(manifest[part], schema, str(self.manifest_path), prefix=f"{part}.")
        return manifest

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
        # A process killed inside write_atomic leaves its temporary file; nobody else can be writing one now.
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
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
        return {rec["id"]: rec for rec in read_jsonl(self.generations_path, GENERATION_SCHEMA)}

    def verdicts(self, judge: str | None = None) -> dict[str, dict[str, Any]]:
        return {rec["id"]: rec for rec in read_jsonl(self.verdicts_path(judge), VERDICT_SCHEMA, _upgrade_verdict)}

    def judges_present(self) -> list[str]:
        """Judge ids that have verdict files in this run, primary first."""
        out = []
        if (self.dir / VERDICTS).exists():
            out.append(self.read_manifest().get("judge", "markers"))
        for p in sorted(self.dir.glob("verdicts.*.jsonl")):
            out.append(p.name[len("verdicts."):-len(".jsonl")])
        return out
