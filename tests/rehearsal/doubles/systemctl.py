#!/usr/bin/python3
"""systemctl double: runs a unit's Exec lines the way systemd would, without systemd.

Supports what the boot path uses: daemon-reload, enable [--now], start, stop, restart,
is-active, is-enabled. For a start it reads the unit file as systemd does (systemd.exec(5),
systemd.service(5)): EnvironmentFile= is read at every start (so a rotated secret written
there is picked up by a restart, and a stale one is reused), ExecStartPre= lines run in
order and fail the start (a leading `+` runs it as root, otherwise as User=), then
ExecStart= runs as User= in the background (Type=simple: the start job succeeds once it is
forked). The service gets a clean environment, like systemd's: PATH, LANG, HOME, USER,
LOGNAME, SHELL, the EnvironmentFile values, plus the manager's DefaultEnvironment, which in
the rehearsal carries AWS_ENDPOINT_URL (the lab's one environment tweak).
Not emulated: Restart=, timeouts, sandboxing options, dependencies.

State lives in /run/obiam-lab/records/systemd (the node's private /run).
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/usr/lib/systemd/system"))
STATE = Path("/run/obiam-lab/records/systemd")
MANAGER_ENVIRONMENT = ("AWS_ENDPOINT_URL",)


def record(*words: str) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"time": time.time(), "argv": list(words)}) + "\n")


def unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def parse_unit(name: str) -> dict[str, list[str]]:
    for directory in UNIT_DIRS:
        path = directory / name
        if path.is_file():
            break
    else:
        sys.exit(f"Failed to start {name}: Unit {name} not found.")
    section, values = "", {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


def read_environment_file(path: str) -> dict[str, str]:
    optional = path.startswith("-")
    path = path.lstrip("-")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if optional:
            return {}
        raise
    environment = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        key, _, value = stripped.partition("=")
        # systemd unquotes "..." and '...' and handles C escapes inside double quotes.
        words = shlex.split(value, posix=True) if value else [""]
        environment[key.strip()] = " ".join(words)
    return environment


def service_environment(unit: dict[str, list[str]], user: pwd.struct_passwd) -> dict[str, str]:
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "LANG": "C.UTF-8",
                   "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name, "SHELL": user.pw_shell}
    environment.update({k: os.environ[k] for k in MANAGER_ENVIRONMENT if k in os.environ})
    for assignment in unit.get("Service.Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            environment[key] = value
    for path in unit.get("Service.EnvironmentFile", []):
        environment.update(read_environment_file(path))
    return environment


def demote(user: pwd.struct_passwd):  # type: ignore[no-untyped-def]
    def change() -> None:
        os.setgid(user.pw_gid)
        os.initgroups(user.pw_name, user.pw_gid)
        os.setuid(user.pw_uid)
    return change


def pid_file(name: str) -> Path:
    return STATE / f"{name}.pid"


def main_pid(name: str) -> int | None:
    if name.endswith(".timer"):
        return 1 if (STATE / f"{name}.active").exists() else None
    try:
        pid = int(pid_file(name).read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    try:  # a zombie is not running
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return None
    except FileNotFoundError:
        return None
    return pid


def start(name: str) -> int:  # noqa: PLR0911 - one return per way a start job ends
    if main_pid(name) is not None:
        return 0
    unit = parse_unit(name)
    if name.endswith(".timer"):
        # Timers are recorded as active; the lab does not fire them (scenarios start units themselves).
        STATE.mkdir(parents=True, exist_ok=True)
        pid_file(name).write_text(str(os.getpid()))
        (STATE / f"{name}.active").touch()
        record("timer", name)
        return 0
    user = pwd.getpwnam(unit.get("Service.User", ["root"])[-1])
    root = pwd.getpwnam("root")
    try:
        environment = service_environment(unit, user)
    except OSError as error:
        print(f"Failed to start {name}: {error}", file=sys.stderr)
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    journal = (STATE / f"{name}.journal").open("ab")
    for line in unit.get("Service.ExecStartPre", []):
        as_root = line.startswith("+")
        ignore_failure = line.lstrip("+!:@").startswith("-") or line.startswith("-")
        argv = shlex.split(line.lstrip("+-!:@"))
        who = root if as_root else user
        result = subprocess.run(argv, env={**environment, "HOME": who.pw_dir, "USER": who.pw_name},
                                preexec_fn=None if as_root else demote(user), stdin=subprocess.DEVNULL,
                                stdout=journal, stderr=journal, check=False)
        record("ExecStartPre", name, line, str(result.returncode))
        if result.returncode != 0 and not ignore_failure:
            print(f"Job for {name} failed because the control process exited with error code.", file=sys.stderr)
            return 1
    if unit.get("Service.Type", ["simple"])[-1] == "oneshot":
        # Type=oneshot: the start job waits for every ExecStart= line (systemd.service(5)).
        for line in unit.get("Service.ExecStart", []):
            as_root = line.startswith("+")
            result = subprocess.run(shlex.split(line.lstrip("+-!:@")), env=environment,
                                    preexec_fn=None if as_root else demote(user), stdin=subprocess.DEVNULL,
                                    stdout=journal, stderr=journal, check=False)
            record("ExecStart", name, line, str(result.returncode))
            if result.returncode != 0:
                print(f"Job for {name} failed because the control process exited with error code.",
                      file=sys.stderr)
                return 1
        return 0
    command = unit["Service.ExecStart"][-1]
    # The double is single-threaded, so preexec_fn (setuid before exec, as systemd's User= does) is safe.
    process = subprocess.Popen(shlex.split(command.lstrip("+-!:@")), env=environment, preexec_fn=demote(user),  # noqa: PLW1509
                               stdin=subprocess.DEVNULL, stdout=journal, stderr=journal, start_new_session=True,
                               close_fds=True, cwd="/")
    pid_file(name).write_text(str(process.pid))
    record("ExecStart", name, command, str(process.pid))
    return 0


def stop(name: str) -> int:
    if name.endswith(".timer"):
        (STATE / f"{name}.active").unlink(missing_ok=True)
        return 0
    pid = main_pid(name)
    if pid is None:
        return 0
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while main_pid(name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if main_pid(name) is not None:
        os.killpg(pid, signal.SIGKILL)
    pid_file(name).unlink(missing_ok=True)
    record("stopped", name)
    return 0


def main(argv: list[str]) -> int:  # noqa: PLR0911 - one return per verb
    record(*argv)
    args = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    if not args:
        return 0
    verb, units = args[0], [unit_name(u) for u in args[1:]]
    if verb == "daemon-reload":
        return 0
    if verb == "enable":
        STATE.mkdir(parents=True, exist_ok=True)
        for name in units:
            (STATE / f"{name}.enabled").touch()
        return max((start(n) for n in units), default=0) if "--now" in flags else 0
    if verb == "start":
        return max((start(n) for n in units), default=0)
    if verb == "stop":
        return max((stop(n) for n in units), default=0)
    if verb == "restart":
        for name in units:
            stop(name)
        return max((start(n) for n in units), default=0)
    if verb == "is-active":
        active = all(main_pid(n) is not None for n in units)
        if "--quiet" not in flags and "-q" not in flags:
            print("active" if active else "inactive")
        return 0 if active else 3
    if verb == "is-enabled":
        enabled = all((STATE / f"{n}.enabled").exists() for n in units)
        print("enabled" if enabled else "disabled")
        return 0 if enabled else 1
    print(f"systemctl (rehearsal double): unsupported command {verb!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
