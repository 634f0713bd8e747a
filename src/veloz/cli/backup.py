"""`veloz backup upload|list|download`: backup directories to and from S3 for
scripts/backup/*.sh (VELOZ_S3_BUCKET, VELOZ_S3_ENDPOINT_URL, the AWS_* variables)."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from veloz.backup.s3 import Location

app = typer.Typer(help="Copy backup directories to and from S3.", no_args_is_help=True)

BucketOption = Annotated[
    str | None,
    typer.Option("--bucket", help="s3://bucket[/prefix] (default VELOZ_S3_BUCKET)"),
]


def _location(bucket: str | None) -> "Location":
    from veloz.backup.s3 import Location

    chosen = bucket or os.environ.get("VELOZ_S3_BUCKET", "")
    if not chosen:
        typer.echo("veloz: no bucket: set VELOZ_S3_BUCKET=s3://bucket[/prefix]", err=True)
        raise typer.Exit(2)
    try:
        return Location.parse(chosen)
    except ValueError as exc:
        typer.echo(f"veloz: VELOZ_S3_BUCKET: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(exc: Exception, code: int) -> typer.Exit:
    typer.echo(f"veloz: {exc}", err=True)
    return typer.Exit(code)


@app.command()
def upload(
    directory: Annotated[
        Path, typer.Argument(help="A complete backup dir, e.g. /backup/wal/<stamp>")
    ],
    bucket: BucketOption = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="The backup root DIRECTORY's key is taken from (default VELOZ_BACKUP_DIR)"
        ),
    ] = None,
) -> None:
    """Upload a backup directory to the key its path has under the backup root
    (/backup/wal/<stamp> -> s3://bucket/prefix/wal/<stamp>/...), MANIFEST.sha256 last."""
    from veloz.backup.s3 import client, upload_dir

    target = _location(bucket)
    base = (root or Path(os.environ.get("VELOZ_BACKUP_DIR", "/backup"))).resolve()
    try:
        key = directory.resolve().relative_to(base).as_posix()
    except ValueError:
        raise _fail(ValueError(f"{directory} is not under the backup root {base}"), 2) from None
    with _exit_codes():
        uploaded = upload_dir(client(), directory, target, key)
    typer.echo(f"uploaded {len(uploaded)} files to {target}/{key}/")


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Bad input (ValueError) exits 2, the store failing (S3Error) exits 1: one line each."""
    from veloz.backup.s3 import S3Error

    try:
        yield
    except ValueError as exc:
        raise _fail(exc, 2) from None
    except S3Error as exc:
        raise _fail(exc, 1) from None


@app.command(name="list")
def list_sets(
    bucket: BucketOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Complete backup sets in the bucket (those with a MANIFEST.sha256), one
    `KIND STAMP` line each, oldest first."""
    from veloz.backup.s3 import S3Error, client, complete_sets

    try:
        sets = complete_sets(client(), _location(bucket))
    except S3Error as exc:
        raise _fail(exc, 1) from None
    if as_json:
        typer.echo(json.dumps(sets))
        return
    for kind, stamps in sets.items():
        for stamp in stamps:
            typer.echo(f"{kind} {stamp}")


@app.command()
def download(
    key: Annotated[
        str, typer.Argument(help="KIND/STAMP as `list` shows it, e.g. wal/20261129T031500Z")
    ],
    dest: Annotated[Path, typer.Argument(help="Directory to write (created)")],
    bucket: BucketOption = None,
) -> None:
    """Download one complete backup set, MANIFEST.sha256 last."""
    from veloz.backup.s3 import client, download_dir

    source = _location(bucket)
    with _exit_codes():
        written = download_dir(client(), source, key, dest)
    typer.echo(f"downloaded {len(written)} files from {source}/{key}/ to {dest}")
