"""A decision made in the real ``biodiscover review`` process survives SIGKILL of that process.

Runs the CLI in a pseudo-terminal (as a taxonomist's terminal would), presses
``a`` and Enter, waits until another connection sees the accept, kills the app
with SIGKILL and checks the file: the decision is there and ``check`` is clean.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from biodiscover.storage.db import Database, check_database
from fixtures.review_db import build_review_db

REPO = Path(__file__).resolve().parent.parent


def _drain(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_decision_survives_sigkill(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "review.sqlite", max_proposals=5)
    first = fx.proposal_ids[0]
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI in a real terminal of 80x24
        os.chdir(REPO)
        os.environ.update(COLUMNS="80", LINES="24", TERM="xterm-256color")
        os.execv(sys.executable, [sys.executable, "-m", "biodiscover.cli", "review", "--db", str(fx.path),
                                  "--reviewer", "kim"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # an 80x24 terminal
    try:
        screen = b""
        deadline = time.monotonic() + 60
        while b"pending" not in screen and time.monotonic() < deadline:  # the queue is on screen
            screen += _drain(fd, 0.5)
        assert b"pending" in screen, screen[-500:]
        _drain(fd, 1.0)
        os.write(fd, b"a")
        _drain(fd, 2.0)  # the accept dialog opens with the suggested name
        os.write(fd, b"\r")
        with Database.open(fx.path) as db:
            deadline = time.monotonic() + 20
            while db.proposal(first).status != "accepted" and time.monotonic() < deadline:
                _drain(fd, 0.2)
            assert db.proposal(first).status == "accepted"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    with Database.open(fx.path) as db:
        assert db.proposal(first).status == "accepted"
        assert [(r["action"], r["reviewer"]) for r in db.reviews(first)] == [("accept", "kim")]
        assert not check_database(db.path).problems
