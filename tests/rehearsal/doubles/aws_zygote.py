"""The node's AWS CLI v1, imported once per node and forked per call (a "zygote"), so a call costs no start-up.

The AWS CLI v1 spends ~0.45 s of every call importing botocore and awscli, and the boot
path calls it a dozen times per start. This server runs inside the node's namespaces (so
a call sees the node's files, network, IMDS and endpoint exactly as a separate process
would), imports the CLI once, and forks a child per connection from `aws` (aws_client.py):
the child takes over the caller's stdin/stdout/stderr (passed with SCM_RIGHTS), its
environment, working directory and user, runs `awscli.clidriver.main()` with its
arguments, and sends back the exit code. Everything from argument parsing to the HTTP
request runs per call, in a fresh process, as `python -m awscli` would.

The lab runs one master (`--master`), which imports the CLI once per session, in the test
machine's namespaces; for each node it forks a server that joins the node's UTS, network
and mount namespaces (setns(2)) and serves the node's socket. So the node's server is a
process of the node (it dies with the node's namespaces) that paid no import either.

Usage: aws_zygote.py --master CONTROL_SOCKET
       aws_zygote.py SOCKET_PATH   (a server in the current namespaces)
"""

from __future__ import annotations

import array
import contextlib
import io
import json
import os
import random
import signal
import socket
import struct
import sys
import traceback

# `import awscli` first: it makes `botocore` name the copy the CLI vendors. Then what every call
# would import anyway (the plugins, the request machinery), so the children start with it.
import awscli
import awscli.clidriver
import awscli.handlers
import botocore.auth
import botocore.credentials
import botocore.endpoint
import botocore.httpsession
import botocore.parsers
import botocore.retries.standard
import botocore.serialize

PRELOADED = (awscli.handlers, botocore.auth, botocore.credentials, botocore.endpoint, botocore.httpsession,
             botocore.parsers, botocore.retries.standard, botocore.serialize)
MAX_FDS = 3
AWSCLI_DATA = os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data")


def receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    message, ancillary, _flags, _address = conn.recvmsg(1 << 16, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    length, body = int.from_bytes(message[:4], "big"), message[4:]
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise EOFError("the aws client hung up")
        body += chunk
    return json.loads(body), list(fds)


def run_call(conn: socket.socket) -> int:
    request, fds = receive(conn)
    targets = list(request["fds"])  # type: ignore[call-overload]
    for target in range(MAX_FDS):
        if target not in targets:
            os.close(target)
    for target, fd in zip(targets, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    _pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        import pwd
        os.setgroups(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        os.setgid(gid)
        os.setuid(uid)
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    # What `import awscli` does to the environment of a process that starts the CLI.
    data_paths = [os.path.expanduser(os.path.expandvars(p)) for p in os.environ["AWS_DATA_PATH"].split(os.pathsep)] \
        if "AWS_DATA_PATH" in os.environ else []
    os.environ["AWS_DATA_PATH"] = os.pathsep.join([*data_paths, AWSCLI_DATA])
    os.chdir(str(request["cwd"]))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    random.seed()
    # The standard streams as a new interpreter would open them on these descriptors.
    if 0 in targets:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                                  line_buffering=os.isatty(1)) if 1 in targets else open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True) if 2 in targets \
        else open(os.devnull, "w")  # noqa: SIM115
    sys.argv = ["aws", *request["argv"]]  # type: ignore[list-item]
    try:
        code = awscli.clidriver.main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # as the interpreter would: the traceback, exit 1
        traceback.print_exc()
        code = 1
    return int(code or 0)


def child(conn: socket.socket) -> None:
    code = 255
    try:
        code = run_call(conn)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the caller may have closed its end
                stream.flush()
        try:
            conn.sendall(str(code).encode())
        finally:
            os._exit(code)


def main(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path + ".new")
    os.chmod(path + ".new", 0o666)  # noqa: S103 - every user of the node may call aws; the child runs as the caller
    server.listen(64)
    os.rename(path + ".new", path)  # the socket appears only once the server accepts
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            child(conn)
        conn.close()


def join_namespaces(pid: int) -> None:
    """setns(2) into the UTS, network and mount namespaces of `pid` (mount last: it changes root and cwd)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    handles = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY) for kind in ("uts", "net", "mnt")]
    for handle in handles:
        if libc.setns(handle, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into /proc/{pid}/ns: {os.strerror(error)}")
        os.close(handle)
    os.chdir("/")


def master(control: str) -> None:
    """Forks a node's server on request: one JSON line {pid, socket, log, env}, answered with its pid."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(control)
    server.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            request = json.loads(stream.readline())
            pid = os.fork()
            if pid == 0:
                server.close()
                try:
                    join_namespaces(int(request["pid"]))
                    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    os.dup2(log, 1)
                    os.dup2(log, 2)
                    os.close(log)
                    null = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(null, 0)
                    os.close(null)
                    os.environ.clear()
                    os.environ.update(request["env"])
                    conn.close()
                    main(str(request["socket"]))
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(1)
            stream.write(f"{pid}\n".encode())


if __name__ == "__main__":
    sys.stdout.flush()
    if sys.argv[1] == "--master":
        master(sys.argv[2])
    else:
        main(sys.argv[1])
