"""Living under systemd: a tiny ``sd_notify(3)`` (readiness, status, watchdog keep-alives for
``Type=notify`` units) and logging the journal reads (syslog priority prefixes, no timestamps of our own).

The notifier is written here rather than depending on python-systemd / sdnotify because the protocol is a single
datagram of ``KEY=value`` lines to the unix socket named by ``$NOTIFY_SOCKET`` (a leading ``@``
means a Linux abstract socket), and the daemon must run unchanged where systemd is absent:
without the variable every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(name: str) -> str | bytes:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value (``@name`` is the abstract ``\\0name``)."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds within which systemd expects ``WATCHDOG=1`` (``$WATCHDOG_USEC``), or None when not asked.

    ``$WATCHDOG_PID``, when set, must name this process: a child that inherited the variables
    must not keep a hung parent alive.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return usec / 1_000_000 if usec > 0 else None


class Notifier:
    """Sends notifications to the service manager; every method is a no-op without ``$NOTIFY_SOCKET``.

    Failures (the manager went away, a full socket buffer) are logged once and otherwise ignored:
    a daemon must not die because its supervisor is not listening.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET")
        self.address: str | bytes | None = socket_address(name) if name else None
        self.watchdog_interval: float | None = watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._warned = False

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8", "surrogateescape")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self.address)
            return True
        except OSError as error:
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self.address, error)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """Before a config reload; send :meth:`ready` when done (``MONOTONIC_USEC`` for ``Type=notify-reload``)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


# ---------------------------------------------------------------- journald logging
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """``<N>message``: journald reads the syslog priority prefix and adds its own timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{super().format(record)}"


def under_journal(environ: dict[str, str] | None = None) -> bool:
    """Started by systemd (``$INVOCATION_ID``), or stderr is the journal stream (``$JOURNAL_STREAM``)."""
    env = os.environ if environ is None else environ
    if env.get("INVOCATION_ID"):
        return True
    stream = env.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return bool(stream)
    return (stat.st_dev, stat.st_ino) == (device, inode)


def configure_logging(verbose: bool = False, journal: bool | None = None) -> None:
    """stderr logging: journald style under systemd, timestamps otherwise; ``verbose`` adds per-file lines."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journal() if journal is None else journal:
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tagger").setLevel(logging.DEBUG if verbose else logging.INFO)
