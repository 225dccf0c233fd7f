"""The helper every end-to-end test reads a child's stderr with must never lose a line.

CI once failed because a test seeked to the start of the shared log file while the server was
still logging: the child's next writes landed at offset 0 and overwrote the warning under test.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import child_log, read_log

WRITER = "import sys\nfor i in range(20000):\n    sys.stderr.write(f'line {i}\\n'); sys.stderr.flush()\n"


def test_reading_while_a_child_writes_never_overwrites_or_loses_a_line() -> None:
    with child_log() as log:
        child = subprocess.Popen([sys.executable, "-c", WRITER], stderr=log)
        snapshots = []
        while child.poll() is None:
            snapshots.append(read_log(log))
            log.seek(0)  # what the old helper did; with append mode the child still writes at the end
        child.wait()
        final = read_log(log)
    assert final.splitlines() == [f"line {i}" for i in range(20000)]
    assert all(final.startswith(snapshot.rpartition("\n")[0]) for snapshot in snapshots)
