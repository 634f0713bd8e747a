"""Watching the risk limits file: a change reloads it. The directory is watched, not the
file, because an editor's or a deploy's atomic replace gives the file a new inode. A
Kubernetes ConfigMap volume never touches the file itself: the kubelet writes a new
hidden folder and swaps the `..data` symlink the file resolves through, so a change of
`..data` counts too."""

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

logger = logging.getLogger(__name__)


async def watch_file(path: Path, on_change: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `on_change` whenever `path` is written, created or replaced, until `stop`."""
    directory = path.parent
    if not directory.is_dir():
        logger.warning("not watching %s: %s is not a directory", path, directory)
        return

    def changes_of_ours(_: Change, changed: str) -> bool:
        return Path(changed).name in (path.name, "..data")

    async for _ in awatch(
        directory,
        watch_filter=changes_of_ours,
        stop_event=stop,
        debounce=200,
        recursive=False,
    ):
        on_change()
