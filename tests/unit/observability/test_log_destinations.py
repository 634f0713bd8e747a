"""With VELOZ_LOG_DIR the engine's lines reach both the file and stdout: under systemd
the runbooks read the same lines with `journalctl -u veloz` and from /var/log/veloz."""

import io
import json
import logging

from veloz.observability.logs import configure_logging


def test_a_log_dir_adds_the_file_and_keeps_the_stream(tmp_path):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("info", stream=stream, log_dir=tmp_path / "log")
        logging.getLogger("veloz.test").warning("disk almost full")
        for handler in root.handlers:
            handler.flush()
        from_file = (tmp_path / "log" / "veloz.log").read_text().splitlines()
        from_stream = stream.getvalue().splitlines()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], level = saved
        root.setLevel(level)
    # Each destination stamps its own copy: the lines agree but for the microseconds.
    assert [_untimed(line) for line in from_file] == [_untimed(line) for line in from_stream]
    assert json.loads(from_file[-1])["event"] == "disk almost full"


def _untimed(line: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(line)
    del record["timestamp"]
    return record
