"""Which jobs a worker is running, kept where the next worker on the same host finds them.

A worker that is itself killed (kill -9, the OOM killer) takes its job processes with it,
and their records stay `in-progress`. So each worker lists its running job ids in a file
of its own (memory-backed, beside the held records) and holds a lock on it while it lives.
A worker starting on the same host with the same records database takes over every such
file whose lock is free (its worker is gone) and completes those jobs' records. Records of
a worker whose host is gone for good stay `in-progress` (`calls list --outcome in-progress`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from telephony.domain.settings import Settings
from telephony.records.holding import memory_folder, spool_key


class JobLedger:
    """This worker's running jobs, in a file it keeps locked for as long as it lives."""

    def __init__(self, settings: Settings) -> None:
        self._prefix = f"telephony-running-jobs-{spool_key(settings)}-"
        self.path = memory_folder() / f"{self._prefix}{os.getpid()}.txt"
        self._jobs: set[str] = set()
        self._fd: int | None = None

    def take_over_dead_workers(self) -> list[str]:
        """The job ids of workers that died on this host; their files are removed. Call it
        before `open`, so a new worker reusing a dead one's PID does not erase its list."""
        jobs: list[str] = []
        for path in sorted(self.path.parent.glob(f"{self._prefix}*.txt")):
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while it lives
                    jobs += path.read_text(encoding="utf-8").split()
                    path.unlink()
                finally:
                    os.close(fd)
        return jobs

    def open(self, jobs: list[str]) -> None:
        """Start this worker's own list (with `jobs` it took over, until they are done)."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._jobs = set(jobs)
        self._write()

    def add(self, job_id: str) -> None:
        self._jobs.add(job_id)
        self._write()

    def remove(self, job_ids: set[str]) -> None:
        self._jobs -= job_ids
        self._write()

    def _write(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # memory full: the list is a help, not a must
            data = "".join(f"{job}\n" for job in sorted(self._jobs)).encode()
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
