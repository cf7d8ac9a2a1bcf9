"""The rehearsal's namespace cleanup kills only this run's processes: namespace ids are inode numbers
that the kernel reuses, so a second run on the same machine may hold a namespace under an id this
run once knew (a CI job beside a developer's `make test`). Under 0.1 s; no root needed."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.rehearsal.namespaces import descends_from_me


def test_only_this_runs_descendants_count_as_its_own() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    grandchild = 0
    try:
        me = os.getpid()
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        assert descends_from_me(child.pid, me)
        assert descends_from_me(grandchild, me)
        assert not descends_from_me(1, me)
        assert not descends_from_me(me, child.pid)  # a parent is not its child's descendant
    finally:
        if grandchild:
            os.kill(grandchild, signal.SIGKILL)
        child.kill()
        child.wait()
