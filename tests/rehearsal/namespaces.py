"""Linux namespaces for the rehearsal, held by processes rather than named in /run/netns.

A namespace lives as long as a process is in it, so every namespace here is held by one
`sleep` and dies with the last process inside: killing everything in a namespace (which
`kill_namespace` does by comparing /proc/<pid>/ns links) removes its mounts, veths and
addresses too, even after a failed scenario. Nothing is left in the machine's own
namespaces except the one veth end to the services namespace, which goes with its peer.

Only this process's own descendants are ever killed: a namespace's id (an inode number) is reused
once the namespace is gone, so another test run on the same machine (a second checkout, a CI job)
may hold a namespace with an id this run once knew. This process is made a child subreaper, so the
daemons its nodes start stay its descendants when they detach.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path


def run(*argv: str, check: bool = True, input: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False,
                            env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> None:
    """Orphans of this process's descendants are re-parented to it, not to init (prctl(2))."""
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def descends_from_me(pid: int, me: int) -> bool:
    """Whether `pid` is a descendant of `me`, by its parent chain in /proc/<pid>/stat."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
        if pid == me:
            return True
    return False


def namespace_id(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


class Holder:
    """A `sleep infinity` in new mount (+ network, UTS) namespaces; `enter` runs commands inside them."""

    def __init__(self, name: str, parent: Holder | None = None, network: bool = True) -> None:
        become_subreaper()
        self.name = name
        prefix = ["nsenter", f"--target={parent.pid}", "--mount"] if parent else []
        flags = ["--mount", "--uts", "--propagation=private"] + (["--net"] if network else [])
        self.process = subprocess.Popen([*prefix, "unshare", *flags, "--", "sleep", "infinity"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.process.pid
        mine = namespace_id(os.getpid(), "mnt")
        deadline = time.monotonic() + 10
        # nsenter and unshare exec in place, so the pid is the holder once its namespace differs from ours.
        while time.monotonic() < deadline:
            try:
                if namespace_id(self.pid, "mnt") != mine and Path(f"/proc/{self.pid}/comm").read_text() == "sleep\n":
                    break
            except FileNotFoundError:
                raise RuntimeError(f"namespace holder {name} exited: {self.process.poll()}") from None
            time.sleep(0.005)
        else:
            raise RuntimeError(f"namespace holder {name} did not start")
        self.mnt = namespace_id(self.pid, "mnt")
        self._closed = False
        self.net = namespace_id(self.pid, "net")

    def command(self, *argv: str, mount: bool = True, network: bool = True) -> list[str]:
        flags = [f"--target={self.pid}", "--uts"] + (["--mount"] if mount else []) + (["--net"] if network else [])
        return ["nsenter", *flags, "--", *argv]

    def run(self, *argv: str, mount: bool = True, network: bool = True, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(*self.command(*argv, mount=mount, network=network), check=check, input=input)

    def close(self, network_only: bool = False) -> None:
        if self._closed:  # once only: a namespace's id may be reused by a later one after it is gone
            return
        kill_namespace(self.net if network_only else None, None if network_only else self.mnt, self.net)
        self.process.wait(timeout=10)
        self._closed = True


def kill_namespace(*namespaces: str | None) -> None:
    """SIGKILLs every process of this run in any of the given namespaces, then waits until none is left."""
    wanted = {n for n in namespaces if n}
    me = os.getpid()
    for _ in range(50):
        victims = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if ({os.readlink(entry / "ns/mnt"), os.readlink(entry / "ns/net")} & wanted
                        and descends_from_me(int(entry.name), me)):
                    victims.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        for pid in victims:  # reap our own children so they do not linger as zombies
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
