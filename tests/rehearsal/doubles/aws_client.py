"""`aws` on a rehearsal node: hands the call to the node's AWS CLI server (aws_zygote.py).

Sends its arguments, environment, working directory and standard streams over the
server's Unix socket and exits with the code the call ended with. Without a server it
runs the AWS CLI itself. The lab installs it as /usr/local/bin/aws with the interpreter
lines filled in.
"""

import array
import json
import os
import socket
import sys

SOCKET = "/run/obiam-lab/aws.sock"
AWS_CLI = ["/usr/bin/false"]  # replaced by the lab: the venv's python -m awscli


def main() -> int:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(SOCKET)
    except OSError:
        os.execv(AWS_CLI[0], [*AWS_CLI, *sys.argv[1:]])  # noqa: S606 - the CLI itself, arguments untouched
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            continue
    body = json.dumps({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "fds": fds}).encode()
    connection.sendmsg([len(body).to_bytes(4, "big") + body],
                       [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    answer = b""
    while chunk := connection.recv(16):
        answer += chunk
    return int(answer) if answer.strip().isdigit() else 255


if __name__ == "__main__":
    sys.exit(main())
