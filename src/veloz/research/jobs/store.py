"""The jobs on disk: one directory per job,

    <root>/<backtests|optimizations>/<id>/job.json   (+ the results the worker wrote)

Every file is written to a hidden temporary name and renamed over the old one, so a
reader (or a restart) sees the old record or the new one, never half of one.
"""

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from veloz.research.jobs.records import JobKind, JobRecord, is_job_id

logger = logging.getLogger(__name__)

RECORD = "job.json"
_decode_record = msgspec.json.Decoder(JobRecord)


def write_atomically(path: Path, write_to: Callable[[Path], object]) -> Path:
    """`write_to(temporary)`, flushed to disk, then renamed to `path`."""
    partial = path.with_name(f".{path.name}.partial")
    write_to(partial)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)
    return path


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, kind: JobKind, job_id: str) -> Path:
        if not is_job_id(job_id):  # never a path of the caller's making
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / kind.folder / job_id

    def save(self, record: JobRecord) -> None:
        directory = self.directory(record.kind, record.id)
        directory.mkdir(parents=True, exist_ok=True)
        encoded = msgspec.json.format(msgspec.json.encode(record)) + b"\n"
        write_atomically(directory / RECORD, lambda path: path.write_bytes(encoded))

    def records(self, kind: JobKind) -> Iterator[JobRecord]:
        """Every readable record of `kind`; a damaged one is logged and left out."""
        folder = self.root / kind.folder
        if not folder.is_dir():
            return
        for directory in folder.iterdir():
            path = directory / RECORD
            if not is_job_id(directory.name) or not path.is_file():
                continue
            try:
                yield _decode_record.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                logger.warning("job record %s cannot be read, left out: %s", path, exc)

    def file(self, kind: JobKind, job_id: str, name: str) -> Path | None:
        """One of the job's result files, if it is there."""
        path = self.directory(kind, job_id) / name
        return path if path.is_file() else None

    def delete(self, kind: JobKind, job_id: str) -> None:
        shutil.rmtree(self.directory(kind, job_id), ignore_errors=True)
