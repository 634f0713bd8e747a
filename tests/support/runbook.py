"""Replaying the operators' runbooks (docs/operations/runbooks/*.md) as written.

Every fenced `bash` block of a runbook is run, in document order, by bash in one
sandbox that stands for a host installed by scripts/install.sh: its paths (/opt/veloz,
/etc/veloz, /var/lib/veloz, /var/log/veloz, /backup) are folders of the sandbox, its
`http://localhost:8080` is the sandbox's engine on a free loopback port, and systemd,
journald, pgrep/pkill and redis-cli are the stand-ins in tests/support/runbook_bin/
(each says what it emulates). Exports and the working directory carry from one block to
the next, as in the operator's terminal. A line `<!-- replay: COMMAND -->`, invisible to a
reader, runs COMMAND between two blocks where the page offers alternatives (e.g. start
the engine again before the next way of stopping it).

A block that cannot run on this machine says why in its info string, e.g. ```` ```bash
cluster ````; the reasons are the keys of NOT_REPLAYED, and the runbooks' legend explains
them. Nothing else is skipped."""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "operations" / "runbooks"
FAKE_BIN = Path(__file__).resolve().parent / "runbook_bin"

NOT_REPLAYED = {
    "cluster": "needs a Kubernetes cluster (the manifests are rendered and checked offline)",
    "docker": "needs a Docker engine",
    "remote": "reaches a host other than this machine",
    "host": "changes the machine itself (packages, git checkout, certificates, firewall)",
    "follow": "runs until interrupted",
    "example": "sets a value you choose (a version, a URL, a time); the replay sets its own",
}

_SETUP = re.compile(r"^\s*<!-- replay: (?P<command>.+) -->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)[ \t]*(?P<tag>\S*)\s*$")
# Paths of the installed host that live in the sandbox: an absolute path, not the tail of
# a longer one (`/opt/veloz/scripts/backup/` keeps its `backup`).
_HOST_PATHS = re.compile(
    r"(?<![\w.~/-])/(etc/veloz|etc/logrotate\.d/veloz|var/lib/veloz|var/log/veloz|backup)(?![\w-])"
)


@dataclass(frozen=True)
class Block:
    runbook: str
    line: int
    heading: str
    code: str
    reason: str | None  # why it is not replayed; None: it is

    def __str__(self) -> str:
        return f"{self.runbook}:{self.line} ({self.heading})"


def blocks(path: Path) -> list[Block]:
    """The runbook's `bash` blocks, with the heading each stands under."""
    found: list[Block] = []
    heading = ""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        setup = _SETUP.match(line)
        if setup is not None:
            found.append(Block(path.name, index + 1, "replay setup", setup["command"], None))
        opening = _FENCE.match(line)
        if opening is None or not opening["lang"]:
            index += 1
            continue
        indent = len(opening["indent"])
        start = index + 1
        index = start
        while not lines[index].strip().startswith("```"):
            index += 1
        if opening["lang"] == "bash":
            code = "\n".join(text[indent:] for text in lines[start:index])
            found.append(Block(path.name, start, heading, code, opening["tag"] or None))
        index += 1
    return found


class Sandbox:
    """The host a runbook is replayed on."""

    def __init__(
        self,
        root: Path,
        port: int,
        settings: dict[str, str],
        env: dict[str, str],
        backup_dir: Path | None = None,
    ):
        """`backup_dir`: where /backup really is (a PostgreSQL server archiving into it
        must reach it); a folder of the sandbox by default."""
        self.root = root
        self.port = port
        for folder in ("etc/veloz", "etc/logrotate.d", "var/lib/veloz/wal", "var/log/veloz", "run"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        if backup_dir is None:
            (root / "backup").mkdir()
        else:
            (root / "backup").symlink_to(backup_dir)
        shutil.copy(REPO / "config" / "risk_limits.yaml", root / "etc/veloz/risk_limits.yaml")
        logrotate = (REPO / "deploy" / "logrotate" / "veloz").read_text()
        (root / "etc/logrotate.d/veloz").write_text(
            logrotate.replace("/var/log/veloz/", f"{root}/var/log/veloz/")
        )
        engine = {
            "VELOZ_HOST": "127.0.0.1",
            "VELOZ_PORT": str(port),
            "VELOZ_WAL_DIR": str(root / "var/lib/veloz/wal"),
            "VELOZ_DATABASE_URL": f"sqlite:///{root / 'var/lib/veloz/veloz.db'}",
            "VELOZ_RISK_LIMITS_FILE": str(root / "etc/veloz/risk_limits.yaml"),
            "VELOZ_BACKUP_DIR": str(root / "backup"),
            "VELOZ_CONFIG_DIR": str(root / "etc/veloz"),
            "VELOZ_LOG_DIR": str(root / "var/log/veloz"),
        } | settings
        (root / "etc/veloz/veloz.env").write_text(
            "".join(f"{key}={value}\n" for key, value in engine.items())
        )
        self._state = root / "run" / "shell.env"
        self._cwd = root / "run" / "shell.cwd"
        self._state.write_text("")
        self._cwd.write_text(str(root))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VELOZ_", "AWS_", "PG"))}
        self.env = (
            clean
            | {
                "PATH": f"{FAKE_BIN}:{os.environ['PATH']}",
                "RUNBOOK_SANDBOX": str(root),
                "VELOZ_BIN": str(REPO / ".venv" / "bin" / "veloz"),
                "VELOZ_ENV_FILE": str(root / "etc/veloz/veloz.env"),
                "TERM": "dumb",
                "COLUMNS": "120",
            }
            | env
        )

    def rewrite(self, code: str) -> str:
        """The runbook's host paths and address, as they are in this sandbox."""
        code = code.replace("/opt/veloz", str(REPO))
        code = _HOST_PATHS.sub(lambda m: f"{self.root}/{m[1]}", code)
        code = code.replace("localhost:8080", f"127.0.0.1:{self.port}")
        return re.sub(r"\b8080\b", str(self.port), code)

    def run(self, block: Block, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        script = "\n".join(
            [
                f'source "{self._state}"',
                f'cd "$(cat "{self._cwd}")"',
                "set -e",
                self.rewrite(block.code),
                f'export -p > "{self._state}"',
                f'pwd > "{self._cwd}"',
            ]
        )
        return subprocess.run(
            ["bash", "-c", script],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def journal_tail(self, lines: int = 30) -> str:
        """What the sandbox's engine wrote last (its stdout, as journald would keep it)."""
        journal = self.root / "journal.log"
        return "\n".join(journal.read_text().splitlines()[-lines:]) if journal.exists() else ""

    def stop(self) -> None:
        subprocess.run(["systemctl", "stop", "veloz"], env=self.env, timeout=60, check=False)
