"""Child processes die with the process that started them: a SIGKILLed ``scan`` or ``watch`` leaves
no worker (~200 MB with its model) or decoder behind under init."""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent_thread(parent_pid: int) -> None:
    """Linux: the kernel SIGKILLs this process when the *thread* that started it exits (not the
    process: PR_SET_PDEATHSIG follows the forking thread). Call it only where that thread lives as
    long as its process, in the child, before anything else."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def dying_with_this_thread() -> Callable[[], None]:
    """A ``preexec_fn`` for a decoder subprocess: it is killed if this thread (or process) dies."""
    return functools.partial(die_with_parent_thread, os.getpid())


def exit_with_parent_process() -> None:
    """In a multiprocessing child: a thread waits for the parent *process* to end, whichever of its
    threads started this one, then kills this process. The wait is on the sentinel pipe the parent
    holds open (EOF when it dies), so there is no race with a parent that is already gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup to do: the parent owned every result

    threading.Thread(target=watch, name="tagger-parent-watch", daemon=True).start()
