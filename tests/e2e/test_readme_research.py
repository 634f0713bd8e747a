"""The README's research commands, run as written (the sample bars in place of
`../shared/data/`, a temporary data store): import, a backtest with its HTML report, a
walk-forward optimisation with its files."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.support.sample_bars import sample_path

ROOT = Path(__file__).resolve().parents[2]
VELOZ = Path(sys.executable).with_name("veloz")


def readme_research_commands() -> list[list[str]]:
    """The bash block after the README's "Research on real bars" paragraph, one argv per
    command (backslash continuations joined)."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("Research on real bars") :]
    block = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert block is not None, "the README has no research block"
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def test_the_readme_research_commands_work_as_written(tmp_path: Path) -> None:
    commands = readme_research_commands()
    assert [argv[1] for argv in commands] == ["data", "backtest", "optimize"]
    env = {**os.environ, "VELOZ_DATA_DIR": str(tmp_path / "market")}
    for argv in commands:
        assert argv[0] == ".venv/bin/veloz"
        args = [str(sample_path()) if a.startswith("../shared/data/") else a for a in argv[1:]]
        done = subprocess.run(
            [str(VELOZ), *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (argv, done.stderr[-2000:])
    report = (tmp_path / "rsi.html").read_text()
    assert report.lower().startswith("<!doctype html>") and "rsi_reversion" in report
    summary = json.loads((tmp_path / "runs" / "rsi" / "summary.json").read_text())
    assert summary["strategy"] == "rsi_reversion" and summary["objective"] == "sortino"
    assert len(summary["walk_forward"]["results"]) == 3
    assert {"results.csv", "results.parquet", "report.html"} <= {
        p.name for p in (tmp_path / "runs" / "rsi").iterdir()
    }
