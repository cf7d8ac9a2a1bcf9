"""Linux namespaces for the rehearsal, held by processes rather than named in /run/netns.

A namespace lives as long as a process is in it, so every namespace here is held by one
`sleep` and dies with the last process inside: killing everything in a namespace (which
`kill_namespace` does by comparing /proc/<pid>/ns links) removes its mounts, veths and
addresses too, even after a failed scenario. Nothing is left in the machine's own
namespaces except the one veth end to the services namespace, which goes with its peer.
"""

from __future__ import annotations

import contextlib
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


def namespace_id(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


class Holder:
    """A `sleep infinity` in new mount (+ network, UTS) namespaces; `enter` runs commands inside them."""

    def __init__(self, name: str, parent: Holder | None = None, network: bool = True) -> None:
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
    """SIGKILLs every process in any of the given namespaces, then waits until none is left."""
    wanted = {n for n in namespaces if n}
    for _ in range(50):
        victims = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if {os.readlink(entry / "ns/mnt"), os.readlink(entry / "ns/net")} & wanted:
                    victims.append(int(entry.name))
            except OSError:
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
