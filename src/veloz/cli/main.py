"""`veloz`: run the engine (service or stdio mode) and work with the journal."""

import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from veloz.cli import (
    backtest,
    backup,
    config,
    credentials,
    data,
    db,
    optimize,
    strategy,
    validate,
    wal,
)
from veloz.cli.help import PlainHelpGroup

if TYPE_CHECKING:
    from veloz.persistence.service import HistoryConfig, HistoryService
    from veloz.runtime.live import LiveEngine

app = typer.Typer(
    help="VeloZ trading engine.",
    no_args_is_help=True,
    add_completion=False,
    cls=PlainHelpGroup,  # every command's help without type tags or cut sentences
)
app.add_typer(wal.app, name="wal")
app.add_typer(db.app, name="db")
app.add_typer(backup.app, name="backup")
app.add_typer(backtest.app, name="backtest")
app.add_typer(optimize.app, name="optimize")
app.add_typer(strategy.app, name="strategy")
app.add_typer(data.app, name="data")
app.add_typer(config.app, name="config")
app.add_typer(credentials.keys_app, name="keys")
app.add_typer(credentials.users_app, name="users")
app.command("validate-deployment")(validate.validate_deployment)


@app.command()
def engine(
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Commands on stdin, events on stdout")
    ] = False,
    port: Annotated[int | None, typer.Option(help="HTTP port (default VELOZ_PORT, 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default VELOZ_HOST)")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Read VELOZ_* from this file too")] = None,
) -> None:
    """Start the engine: replay the journal, reconcile with the venue, then serve."""
    if sys.platform == "linux":
        import ctypes

        # The runbooks find the engine by name: `pgrep veloz_engine`, `pkill -9 veloz_engine`.
        # PR_SET_NAME (15) names the calling thread; the main thread's name is the process's.
        ctypes.CDLL(None).prctl(15, b"veloz_engine", 0, 0, 0)
    from veloz.config import SettingsError, load_settings, unknown_variables
    from veloz.journal.segments import JournalLocked
    from veloz.observability.logs import configure_logging
    from veloz.runtime.engine_config import engine_config as build_engine_config
    from veloz.runtime.live import LiveEngine, StartRefused

    try:
        settings = load_settings(env_file)
        engine_config = build_engine_config(settings)
        settings.auth_config()  # a missing or weak JWT secret stops the start here
        redis_config = settings.redis_config()
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(
        settings.log_level,
        # stdio mode's stdout carries its events: its logs go to stderr.
        stream=sys.stderr if stdio else sys.stdout,
        log_dir=settings.log_dir,
        secrets=settings.secret_values(),
    )
    for unknown in unknown_variables(env_file):
        logging.getLogger("veloz.config").warning(unknown)
    engine = LiveEngine(engine_config)
    history_config = settings.history_config()
    if redis_config is not None:
        from veloz.runtime.redis_events import attach_redis, attach_remote_redis

        # Before the start: retention then counts it. With a projector process (the
        # default), the publisher runs there, off the engine's process.
        if history_config is not None and not history_config.inline:
            attach_remote_redis(redis_config, engine)
        else:
            attach_redis(redis_config, engine)
    try:
        if stdio:
            from veloz.runtime.stdio import run_stdio

            code = _run(
                _with_projector(
                    run_stdio(engine, history=_history(history_config, engine)),
                    history_config,
                    env_file,
                ),
                settings.worker_threads,
            )
        else:
            from veloz.runtime.service import run_service

            # The options override the environment; /api/config shows what is in force.
            effective = settings.model_copy(
                update={
                    "host": host or settings.host,
                    "port": port if port is not None else settings.port,
                }
            )
            code = _run(
                _with_projector(
                    run_service(
                        engine,
                        effective,
                        effective.host,
                        effective.port,
                        _history(history_config, engine),
                    ),
                    history_config,
                    env_file,
                ),
                settings.worker_threads,
            )
    except JournalLocked as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(3) from None
    except StartRefused as exc:
        typer.echo(f"veloz: {exc}", err=True)
        # 78 (EX_CONFIG): fix the configuration first, so a supervisor should not restart
        # (systemd: RestartPreventExitStatus=78); 75 (EX_TEMPFAIL): worth trying again.
        raise typer.Exit(78 if exc.permanent else 75) from None
    raise typer.Exit(code)


@app.command()
def gateway(
    port: Annotated[int | None, typer.Option(help="HTTP port (default VELOZ_PORT, 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default VELOZ_HOST)")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Read VELOZ_* from this file too")] = None,
) -> None:
    """Serve the API and the streams for an engine, as one of any number of stateless
    replicas: events from Redis (VELOZ_REDIS_URL), commands forwarded to the engine
    (VELOZ_ENGINE_URL)."""
    from veloz.config import SettingsError, load_settings, unknown_variables
    from veloz.observability.logs import configure_logging

    try:
        settings = load_settings(env_file)
        settings.auth_config()  # a missing or weak JWT secret stops the start here
        redis_config = settings.redis_config()
        if redis_config is None:
            raise SettingsError(
                "a gateway follows the engine's events in Redis: set VELOZ_REDIS_URL "
                "(or VELOZ_REDIS_SENTINELS and VELOZ_REDIS_MASTER)"
            )
        if not settings.engine_url:
            raise SettingsError(
                "a gateway forwards commands to its engine: set VELOZ_ENGINE_URL "
                "(e.g. http://engine:8080)"
            )
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(
        settings.log_level,
        stream=sys.stdout,
        log_dir=settings.log_dir,
        secrets=settings.secret_values(),
    )
    for unknown in unknown_variables(env_file):
        logging.getLogger("veloz.config").warning(unknown)
    from veloz.runtime.gateway.service import run_gateway

    effective = settings.model_copy(
        update={"host": host or settings.host, "port": port if port is not None else settings.port}
    )
    try:
        code = _run(run_gateway(effective, redis_config, effective.host, effective.port))
    except SettingsError as exc:  # its audit directory unusable or another gateway's
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def projector(
    env_file: Annotated[Path | None, typer.Option(help="Read VELOZ_* from this file too")] = None,
    parent_pid: Annotated[
        int | None,
        typer.Option(help="Exit when this process (the engine that started it) dies", hidden=True),
    ] = None,
    drain: Annotated[
        bool, typer.Option("--drain", help="Project what is durable now, then exit")
    ] = False,
) -> None:
    """Run the history projector: the journal and the audit spool into the history store,
    and the journal to the Redis stream when VELOZ_REDIS_* is set.

    `veloz engine` starts it by itself (VELOZ_PROJECTOR=process); run it yourself with
    VELOZ_PROJECTOR=external, on the same VELOZ_WAL_DIR, VELOZ_DATABASE_URL and
    VELOZ_REDIS_*."""
    import os
    import signal

    # Told to stop before the projector's loop handles signals: it still drains once.
    stopping: list[int] = [signal.SIGTERM] if drain else []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, b"veloz_projector", 0, 0, 0)  # PR_SET_NAME
        if parent_pid is not None:
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: drain if it dies
    if parent_pid is not None and os.getppid() != parent_pid:
        stopping.append(signal.SIGTERM)  # it died before we asked
    from veloz.config import SettingsError, load_settings
    from veloz.observability.logs import configure_logging
    from veloz.persistence.projector_process import run_projector

    try:
        settings = load_settings(env_file)
        redis_config = settings.redis_config()
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    history_config = settings.history_config()
    if history_config is None:
        typer.echo("veloz: VELOZ_DATABASE_URL=none: there is no store to project into", err=True)
        raise typer.Exit(2)
    configure_logging(
        settings.log_level,
        stream=sys.stderr,
        log_dir=settings.log_dir,
        secrets=settings.secret_values(),
    )
    raise typer.Exit(
        _run(
            run_projector(
                history_config, settings.wal_dir, lambda: bool(stopping), redis=redis_config
            )
        )
    )


async def _with_projector(
    main: "Coroutine[Any, Any, int]", config: "HistoryConfig | None", env_file: Path | None
) -> int:
    """`main` with `veloz projector` as a supervised child if VELOZ_PROJECTOR=process."""
    from veloz.runtime.projector import supervised_projector

    async with supervised_projector(config.projector_mode if config else None, env_file):
        return await main


def _history(config: "HistoryConfig | None", engine: "LiveEngine") -> "HistoryService | None":
    from veloz.runtime.history import attach_history

    return attach_history(config, engine) if config is not None else None


def _run(main: "Coroutine[Any, Any, int]", worker_threads: int = 4) -> int:
    """Run on uvloop (installed with uvicorn[standard]): the order path is loop-bound.
    Blocking work handed to threads (`asyncio.to_thread`: password hashing, file work)
    shares one pool of `worker_threads` (VELOZ_WORKER_THREADS)."""
    import asyncio
    import gc
    from concurrent.futures import ThreadPoolExecutor

    import uvloop

    # Most hot-path objects are untracked (gc=False structs); collect the rest less often
    # so a full collection does not pause order intake.
    gc.set_threshold(20_000, 50, 100)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.get_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=worker_threads, thread_name_prefix="veloz-worker")
        )
        return runner.run(main)


def main() -> None:
    app()
