"""Measuring a real process tree: wall and CPU seconds of the whole tree (``getrusage(RUSAGE_CHILDREN)``,
worker processes included), peak memory per role (``VmHWM`` sampled from /proc), and the CPU other
processes used meanwhile (/proc/stat minus the measured tree).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF

from rich.console import Console

console = Console(stderr=True)
SAMPLE_INTERVAL = 0.05  # seconds between /proc memory samples


@dataclass
class Measured:
    """One subprocess run: wall and CPU seconds of its whole tree, peak RSS (MB) per role."""

    wall: float
    cpu: float
    peak_mb: dict[str, float]
    stdout: str
    returncode: int
    others: float  # cores kept busy by other processes during the run (nan off Linux)


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (Linux /proc/stat), else nan."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu_of(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _proc_children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _proc_children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "main"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"resource_tracker" in cmdline:
        return "tracker"
    if b"multiprocessing" in cmdline or b"spawn_main" in cmdline:
        return "worker"
    return "other"


class MemorySampler:
    """Peak RSS (``VmHWM``) per role of a process tree, sampled until stopped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        if not Path("/proc").is_dir():
            return
        for pid in _tree(self.root):
            hwm = _status_kb(pid, "VmHWM")
            if hwm is None:
                continue
            role = _role(pid, self.root)
            if self.roles.get(pid) != role:  # exec-ed since: until then a fork shows its parent's memory
                self.roles[pid], self.peak_kb[pid] = role, 0
            self.peak_kb[pid] = max(hwm, self.peak_kb[pid])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def peak_mb(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for pid, kb in self.peak_kb.items():
            role = self.roles[pid]
            peaks[role] = max(peaks.get(role, 0.0), kb / 1024)
        return peaks

    def current_mb(self) -> float:
        """Resident memory of the whole tree now (``VmRSS`` summed)."""
        return sum((_status_kb(pid, "VmRSS") or 0) for pid in _tree(self.root)) / 1024


def measure(command: Sequence[str], env: dict[str, str], timeout: float = 3600) -> Measured:
    """Run ``command`` to the end; CPU is the tree's (children are reaped by their parents)."""
    cpu_before, own_before, busy_before = _cpu_of(RUSAGE_CHILDREN), _cpu_of(RUSAGE_SELF), _busy_cpu_seconds()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with MemorySampler(process.pid) as sampler:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    cpu = _cpu_of(RUSAGE_CHILDREN) - cpu_before
    own = _cpu_of(RUSAGE_SELF) - own_before  # the bench itself: starting the process, sampling memory
    others = max(0.0, _busy_cpu_seconds() - busy_before - cpu - own) / wall
    if process.returncode != 0:
        console.print(f"[red]{' '.join(command[:3])}... exited {process.returncode}[/]\n{stderr[-2000:]}")
    return Measured(wall, cpu, sampler.peak_mb(), stdout, process.returncode, others)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
