"""Counts file arrivals in the shared artifact directories with inotify, to tell "seeded once" from "seeded twice".

The end state of a share cannot show that two nodes both copied into it (the second copy
writes the same bytes); the writes themselves can. Each arrival of a file in a share's
backing directory (a write closed, or a rename into it) is one IN_CLOSE_WRITE or
IN_MOVED_TO event (inotify(7)); the bindfs layer writes the backing files with ordinary
system calls, so every node's copy shows up here.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
from collections import Counter
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
_EVENT = struct.Struct("iIII")
_LIBC = ctypes.CDLL(None, use_errno=True)


class Arrivals:
    def __init__(self, directories: dict[str, Path]) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._names: dict[int, str] = {}
        for name, path in directories.items():
            wd = _LIBC.inotify_add_watch(self._fd, str(path).encode(), IN_CLOSE_WRITE | IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self._names[wd] = name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if ready:
                self._drain()

    def _drain(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        with self._lock:
            while offset < len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0").decode()
                offset += _EVENT.size + length
                self.counts[(self._names.get(wd, "?"), name)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        self._drain()
        with self._lock:
            return Counter(self.counts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
