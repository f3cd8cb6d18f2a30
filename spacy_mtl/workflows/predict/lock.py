"""`OUTPUT.lock`: one run at a time writes an output.

Two runs into one output would each append their rows (and each resume from the other's
progress file): the output would hold rows twice, out of order. The lock file is made
with O_CREAT | O_EXCL, which is atomic (also on NFS v3 and later), and holds the owner's
PID, host and start time, so a refused run can name it. It is removed when its run ends,
however it ends, short of the process being killed; a lock whose process is gone from
this host (killed, the machine restarted) is taken over by the next run. A lock of
another host is never taken over: this host cannot tell whether that run still goes.
"""

import json
import os
import socket
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Dict, Optional

from .formats import LOCK_SUFFIX, PredictError


def lock_path(output: Path) -> Path:
    """The lock file of an output."""
    return output.with_name(output.name + LOCK_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _read(path: Path) -> Optional[Dict[str, Any]]:
    """The owner recorded in a lock file; None if it is gone; {} if it cannot be read
    (being written, or damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_stale(owner: Dict[str, Any], host: str) -> bool:
    pid = owner.get("pid")
    return owner.get("host") == host and isinstance(pid, int) and not _pid_alive(pid)


class OutputLock:
    """Holds `OUTPUT.lock` for a run (a context manager).

    RAISES PredictError: Another live run holds the lock (the message names its PID, host
        and start time, and the lock file), or the lock cannot be created (a folder that
        cannot be written).
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = lock_path(output)
        self.owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        self.held = False

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        # Twice at most: once more after taking over a stale lock.
        for _ in range(2):
            if self._create():
                self.held = True
                return
            owner = _read(self.path)
            if owner is None:
                continue  # released in between
            if not _is_stale(owner, str(self.owner["host"])):
                raise PredictError(self._held_by(owner))
            self._take_over(owner)
        raise PredictError(self._held_by(_read(self.path) or {}))

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            raise PredictError(
                f"{self.path}: cannot create the lock file of the output "
                f"({err.strerror or err}); is {self.path.parent} a folder you can write to?"
            ) from None
        with os.fdopen(fd, "w", encoding="utf8") as file:
            json.dump(self.owner, file)
        return True

    def _take_over(self, stale: Dict[str, Any]) -> None:
        """Remove a lock whose process is gone. It is first renamed to a name of this
        process's own, then checked to be the stale one: two runs that both found it stale
        cannot both remove it, nor one remove the lock the other has just made."""
        moved = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, moved)
        except FileNotFoundError:
            return  # another run took it over first; retry O_EXCL
        if _read(moved) == stale:
            moved.unlink(missing_ok=True)
            return
        # Another run's fresh lock was moved: put it back (link fails if a third run has
        # made one meanwhile; then that one stands and this run is refused).
        with suppress(OSError):
            os.link(moved, self.path)
        moved.unlink(missing_ok=True)

    def _held_by(self, owner: Dict[str, Any]) -> str:
        who = (
            f"process {owner.get('pid', '?')} on host {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')}"
        )
        return (
            f"{self.output} is being written by another predict run ({who}; lock file "
            f"{self.path}). Two runs into one output would mix their rows: wait for it to "
            "end, or write to another output. If that process is gone (on another host, "
            "say), delete the lock file."
        )

    def release(self) -> None:
        """Remove the lock if this run holds it (and it is still this run's)."""
        if not self.held:
            return
        self.held = False
        if _read(self.path) == self.owner:
            self.path.unlink(missing_ok=True)
