"""Resident-memory sampling for the memory workload.

``RssSampler`` is a background thread that reads, about 20 times a second,
the resident set size (RSS) of this process and the summed RSS of this
process and all its descendants (the "tree"), and keeps the peaks.  It is a
measurement only; nothing waits on it.

Sources: ``/proc/<pid>/statm`` and ``/proc/<pid>/task/<tid>/children``
(Linux).  Without ``/proc``, psutil if it is installed (the ``bench`` extra
installs it); without either, only the parent's peak is known, from
``resource.getrusage`` (``ru_maxrss``), and the tree is reported as unknown.

The tree figure sums each process's RSS, so pages shared between a parent
and its forked children count once per process; the *growth* (peak minus a
baseline taken before the pool starts) is what the benchmark reports, and
unchanged shared pages cancel out of it.
"""

import os
import threading

_PROC = os.path.isdir("/proc/self/task")
try:
    import psutil
except ImportError:   # optional
    psutil = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_of(pid):
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid):
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            pass
    return kids


def tree_pids(root=None):
    """``root`` (default: this process) and all its descendants."""
    root = os.getpid() if root is None else root
    seen = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


def rss_self():
    """This process's current RSS in bytes (peak RSS where /proc is absent)."""
    if _PROC:
        return _rss_of(os.getpid())
    if psutil is not None:
        return psutil.Process().memory_info().rss
    import resource
    import sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_tree():
    """Summed RSS in bytes of this process and its descendants (or None)."""
    if _PROC:
        return sum(_rss_of(pid) for pid in tree_pids())
    if psutil is not None:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    return None


class RssSampler(threading.Thread):
    """Sample RSS every ``interval`` seconds; keep baselines and peaks."""

    def __init__(self, interval=0.05):
        super().__init__(name="rss-sampler", daemon=True)
        self.interval = interval
        self._stop_event = threading.Event()
        self.base_self = rss_self()
        self.base_tree = rss_tree()
        self.peak_self = self.base_self
        self.peak_tree = self.base_tree
        self.samples = 0
        self.run_base_tree = None   # set by mark()
        self.run_peak_tree = None

    def mark(self):
        """Take a second tree baseline (when the workers are up)."""
        t = rss_tree()
        self.run_base_tree = self.run_peak_tree = t

    def sample(self):
        s = rss_self()
        if s > self.peak_self:
            self.peak_self = s
        t = rss_tree()
        if t is not None:
            if t > self.peak_tree:
                self.peak_tree = t
            if self.run_peak_tree is not None and t > self.run_peak_tree:
                self.run_peak_tree = t
        self.samples += 1

    def run(self):
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self):
        self._stop_event.set()
        self.join()
        self.sample()   # one last sample at the end
        return self

    @property
    def growth_self(self):
        return self.peak_self - self.base_self

    @property
    def growth_tree(self):
        if self.base_tree is None:
            return None
        return self.peak_tree - self.base_tree

    @property
    def growth_tree_run(self):
        """Tree growth after ``mark()``: the data, not the new interpreters."""
        if self.run_base_tree is None:
            return None
        return self.run_peak_tree - self.run_base_tree
