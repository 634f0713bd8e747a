"""Backup directories to and from S3 (or an S3-compatible store: VELOZ_S3_ENDPOINT_URL),
with the keys the local layout has: `<prefix>/wal/<stamp>/...`, `<prefix>/history/<stamp>/
...`. MANIFEST.sha256 goes up last and comes down last, so a set without it is incomplete
on either side and ignored. Credentials are boto3's usual ones (AWS_* variables, profiles,
instance roles); nothing here prints them."""

import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

S3Client = Any  # boto3 has no type stubs here

MANIFEST = "MANIFEST.sha256"


class S3Error(Exception):
    """The store refused or could not be reached (the message names the operation)."""


@dataclass(frozen=True, slots=True)
class Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> "Location":
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"expected s3://bucket[/prefix], got {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def client() -> S3Client:
    endpoint = os.environ.get("VELOZ_S3_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint)


@contextmanager
def _guarded(action: str) -> Iterator[None]:
    """Turn boto's errors into one S3Error naming `action`."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise S3Error(f"{action}: {exc}") from None


def upload_dir(s3: S3Client, local: Path, target: Location, key: str) -> list[str]:
    """Upload the complete backup directory `local` under `key`; the manifest last."""
    if not (local / MANIFEST).is_file():
        raise ValueError(f"{local} has no {MANIFEST}: an incomplete backup is not uploaded")
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != MANIFEST)
    uploaded = []
    for path in [*files, local / MANIFEST]:
        name = target.key(key, path.relative_to(local).as_posix())
        with _guarded(f"upload {path} to s3://{target.bucket}/{name}"):
            s3.upload_file(str(path), target.bucket, name)
        uploaded.append(name)
    return uploaded


def _keys(s3: S3Client, target: Location, under: str) -> Iterator[str]:
    prefix = target.key(under) + "/" if target.key(under) else ""
    with _guarded(f"list {target}"):
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=target.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                yield item["Key"]


def complete_sets(s3: S3Client, target: Location) -> dict[str, list[str]]:
    """Stamps with a manifest, oldest first, per kind (`wal`, `history`, `postgres/full`...)."""
    found: dict[str, list[str]] = defaultdict(list)
    strip = len(target.key("") + "/") if target.prefix else 0
    for key in _keys(s3, target, ""):
        relative = key[strip:]
        if not relative.endswith("/" + MANIFEST):
            continue
        kind, _, stamp = relative[: -len(MANIFEST) - 1].rpartition("/")
        if kind:
            found[kind].append(stamp)
    return {kind: sorted(stamps) for kind, stamps in sorted(found.items())}


def download_dir(s3: S3Client, source: Location, key: str, local: Path) -> list[Path]:
    """Download the backup under `key` into `local`; the manifest last."""
    base = source.key(key) + "/"
    keys = sorted(k for k in _keys(s3, source, key) if k.startswith(base))
    if base + MANIFEST not in keys:
        raise ValueError(f"s3://{source.bucket}/{base} has no {MANIFEST}: incomplete")
    keys.remove(base + MANIFEST)
    written = []
    for name in [*keys, base + MANIFEST]:
        path = local / name[len(base) :]
        if ".." in Path(name[len(base) :]).parts:
            raise ValueError(f"refusing the key {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with _guarded(f"download s3://{source.bucket}/{name}"):
            s3.download_file(source.bucket, name, str(path))
        written.append(path)
    return written
