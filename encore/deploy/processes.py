"""Background processes of deployed mode, each known by a pid file; stopped only by that PID.

A service starts in a session of its own (so its process group holds it and the workers it
forks, e.g. LocalExecutor's); its pid file records the PID and the process' start time, so a
PID the kernel has reused for another program is never taken for the service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: when the process started (clock ticks since boot); None
    when there is no such process or it has exited (a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def running_pid(pid_file: Path) -> int | None:
    """The PID recorded in ``pid_file`` if that very process is still alive."""
    try:
        pid_text, started = pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == started else None


def start(command: list[str], env: dict[str, str], log_file: Path, pid_file: Path, cwd: Path) -> int:
    """Start ``command`` in the background, output appended to ``log_file``; returns its PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    return proc.pid


def stop(pid_file: Path, timeout_s: float = 30) -> int | None:
    """SIGTERM the recorded process' group (itself and what it forked), SIGKILL what is left
    after ``timeout_s``; remove the pid file. Returns the PID, or None if it was not running."""
    pid = running_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return None
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.3)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    try:  # reap it if it is our child (a service started by this very process)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    pid_file.unlink(missing_ok=True)
    return pid


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # a zombie group leader (our exited child, not yet reaped) counts as gone
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
