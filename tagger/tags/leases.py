"""Whether another process has a file open for writing: Linux file leases, else a search of ``/proc``.

A file another process has open for writing (a download stalled on its descriptor) is never
replaced: :func:`tagger.tags.safe_write.rewrite_atomically` holds :class:`NoWriters` from the last
size/mtime check through the replace, and refuses with :data:`BEING_WRITTEN`; the scan retries once
the file has changed. :func:`being_written` is the scan's cheap early look.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
from pathlib import Path

from tagger.errors import TagWriteError

BEING_WRITTEN = "being written by another process; next run retries"
"""Why a write was refused because some process has the file open for writing."""

# F_SETLEASE's answers for "no lease for you here", as opposed to EAGAIN, "someone is writing it":
_NOT_OWNER = frozenset({errno.EACCES, errno.EPERM})  # not the file's owner and no CAP_LEASE
_NO_LEASES = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK})  # NFS, FUSE, leases-enable=0


class NoWriters:
    """Held from the last size/mtime check through ``os.replace``: no process has the file open for writing.

    On Linux this is a read lease (``F_SETLEASE``, ``F_RDLCK``) on a read-only descriptor: the kernel
    grants it only while no descriptor anywhere on this machine is open for writing (EAGAIN otherwise),
    and an ``open`` for writing that starts while we hold it waits for us and shows as a lease break,
    checked just before the replace. So a download stalled on an open descriptor is never replaced.

    Where no lease is granted (not the file's owner without CAP_LEASE, or a file system that refuses
    leases: NFS, some FUSE), the descriptors in ``/proc`` are searched instead: every process's as
    root, only our own user's otherwise. A writer found refuses the write as with a lease. When we are
    neither the file's owner nor able to see every process, its owner's downloads are invisible, so
    the write is refused with that reason (run as the owner, or grant CAP_LEASE). Writers on other
    machines of a network file system are never visible; there only the size/mtime checks remain.
    """

    def __init__(self, path: Path, target: Path) -> None:
        self.path, self.target = path, target
        self.fd = -1
        self.leased = False

    def __enter__(self) -> NoWriters:
        self.fd = os.open(self.target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.stat = os.fstat(self.fd)  # the file the lease is on: the caller checks it is still ``target``
            self._exclude_writers(self.stat)
            return self
        except BaseException:
            self._release()
            raise

    def __exit__(self, *_exc: object) -> None:
        self._release()

    def _exclude_writers(self, st: os.stat_result) -> None:
        if not hasattr(fcntl, "F_SETLEASE"):
            self._search_proc(st, "this system has no file leases")
            return
        try:
            _take_read_lease(self.fd)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise TagWriteError(self.path, BEING_WRITTEN) from exc
            if exc.errno in _NOT_OWNER:
                self._search_proc(st, "no lease without owning the file or CAP_LEASE")
            elif exc.errno in _NO_LEASES:
                self._search_proc(st, "the file system grants no leases")
            else:
                raise
            return
        self.leased = True

    def check(self) -> None:
        """Raise if a writer started opening the file while we held the lease."""
        if self.leased and fcntl.fcntl(self.fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK:
            raise TagWriteError(self.path, BEING_WRITTEN)

    def _search_proc(self, st: os.stat_result, why: str) -> None:
        writing, complete = open_for_writing(st)
        if writing:
            raise TagWriteError(self.path, BEING_WRITTEN)
        if not complete and st.st_uid != os.geteuid():
            raise TagWriteError(
                self.path,
                f"cannot tell whether another process is writing it ({why}; its owner's processes are hidden)",
            )

    def _release(self) -> None:
        if self.fd < 0:
            return
        if self.leased:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(self.fd)
        self.fd, self.leased = -1, False


def _take_read_lease(fd: int) -> None:
    """``F_SETLEASE`` ``F_RDLCK`` on ``fd`` (Linux); raises OSError, EAGAIN when a writer has the file open."""
    # A lease break signals its holder, by default with SIGIO, whose default action kills the
    # process; SIGURG is ignored by default, and a break is seen by polling F_GETLEASE instead.
    fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)


def being_written(path: str | Path) -> bool:
    """A cheap early look for the scan, before it decodes anything: True when the kernel refuses a read
    lease because some process has the file open for writing. No guarantee either way (the write
    itself checks again, see :class:`NoWriters`); False wherever no lease can be tried."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        _take_read_lease(fd)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def open_for_writing(st: os.stat_result, proc: str = "/proc") -> tuple[bool, bool]:
    """Whether a process has the file ``st`` describes open for writing, searched in ``/proc``;
    and whether every process could be searched (another user's are hidden from non-root)."""
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return False, False
    complete = True
    for pid in pids:
        try:
            descriptors = os.listdir(f"{proc}/{pid}/fd")
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            complete = False
            continue
        for descriptor in descriptors:
            try:
                linked = os.stat(f"{proc}/{pid}/fd/{descriptor}")
                if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(f"{proc}/{pid}/fdinfo/{descriptor}") as info:
                    flags = next(line for line in info if line.startswith("flags:")).split()[1]
            except (OSError, StopIteration, IndexError):
                continue
            if int(flags, 8) & os.O_ACCMODE != os.O_RDONLY:
                return True, complete
    return False, complete


def take_write_lease(path: Path, fd: int) -> None:
    """``F_SETLEASE`` ``F_WRLCK`` on ``fd``, for a write in place; refused with the reason where none is granted."""
    why = "this system has no file leases"
    if hasattr(fcntl, "F_SETLEASE"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)  # as in _take_read_lease: a break must not kill us
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
            return
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise TagWriteError(path, f"hard-linked and open in another process ({BEING_WRITTEN})") from exc
            if exc.errno in _NOT_OWNER:
                why = "not the file's owner and no CAP_LEASE"
            elif exc.errno in _NO_LEASES:
                why = "the file system grants no leases"
            else:
                raise
    raise TagWriteError(
        path, f'hard-linked: written in place only under a file lease ({why}); hardlinks = "break" replaces it'
    )
