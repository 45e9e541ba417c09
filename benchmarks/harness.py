"""What every benchmark section shares: rows and their measurement, rounds,
the watchdog, tables, targets, and the accounting of other programs' CPU use.

A section builds :class:`Row` objects with :func:`measure` (what to run, how
often), runs them with :func:`run_interleaved`, prints one table with
:func:`print_section` and adds its verdicts to the run's summary with
:func:`target`.
"""

import contextlib
import faulthandler
import os
import signal
import statistics
import sys
import time

import rss

WORKERS = 2                 # worker processes per system
MEASUREMENT_TIMEOUT = 900   # seconds; a hung measurement dumps stacks and exits


def log(msg):
    """Progress, to stderr (the report goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def add(acc, r):
    """The checksum step of integer workloads (order-independent)."""
    return acc + r


def ints_expect(n, plus=1):
    """(count, checksum) of ``x + plus`` over ``range(n)``."""
    return n, n * (n - 1) // 2 + plus * n


# --------------------------------------------------------------------------
# running measurements


class Row:
    """One system's figures in one section: medians over the repeats."""

    def __init__(self, label):
        self.label = label
        self.runs = []
        self.error = None
        self.items = None   # when this row ran on other sizes than the section
        self.spec = None    # what to run (see measure())
        self.repeats = 0

    @property
    def ok(self):
        return self.error is None and bool(self.runs)

    @property
    def n(self):
        return len(self.runs)

    def med(self, attr):
        return statistics.median(getattr(r, attr) for r in self.runs)

    def extra(self, key):
        """The last run's ``extra[key]`` (None when absent)."""
        for r in reversed(self.runs):
            if r.extra and r.extra.get(key) is not None:
                return r.extra[key]
        return None


def measure(label, adapter, stages, source, fold, expect, repeats, items=None,
            **options):
    """A row to be run ``repeats`` times by :func:`run_interleaved`.

    ``items``: the row's item count when it differs from its section's.
    """
    row = Row(label)
    row.spec = (adapter, stages, source, fold, expect, options)
    row.repeats = repeats
    row.items = items
    return row


def paired_ratio(a, b):
    """The median, over the rounds both rows ran, of a's run time / b's.

    The rows of a section run one after another in each round
    (:func:`run_interleaved`), so a ratio taken within a round cancels the
    drift of this machine's speed from round to round, which a ratio of two
    medians does not (on a shared host the same work may take twice as long
    a minute later). The targets are such ratios; the tables show medians.
    None if either row has no runs.
    """
    pairs = list(zip(a.runs, b.runs, strict=False))
    if not (a.ok and b.ok and pairs):
        return None
    return statistics.median(x.total / y.total for x, y in pairs)


def run_interleaved(rows):
    """Run the rows' repeats round by round: round i runs every row once.

    Interleaving spreads a burst of outside load over all systems instead of
    all the repeats of one, so ratios within a section stay comparable.
    Every other round runs the rows in reverse order, so that no row is
    always the one next to a given neighbour or at the same place in a
    round (the speed of this machine drifts within a round too).
    Every run's result count and checksum are checked.
    """
    rounds = max(r.repeats for r in rows)
    for i in range(rounds):
        log(f"  round {i + 1}/{rounds}")
        for row in (rows if i % 2 == 0 else rows[::-1]):
            if row.error is None and i < row.repeats:
                _run_once(row)


def _run_once(row):
    adapter, stages, source, fold, expect, options = row.spec
    try:
        with watchdog(MEASUREMENT_TIMEOUT):
            run = adapter(stages, source, fold, **options)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        log(f"    {row.label}: {row.error}")
        return
    if (run.count, run.checksum) != expect:
        row.error = (f"WRONG RESULTS: got {run.count} results, checksum "
                     f"{run.checksum}; expected {expect[0]}, {expect[1]}")
        log(f"    {row.label}: {row.error}")
        return
    row.runs.append(run)
    log(f"    {row.label}: startup {run.startup:.3f}s  first {run.first:.4f}s"
        f"  total {run.total:.3f}s")


def probe_rate(label, adapter, stages, source, fold, expect, **options):
    """Items/s of one untimed run (None if it failed): to size slow rows."""
    row = measure(f"{label} [probe]", adapter, stages, source, fold, expect, 1,
                  **options)
    _run_once(row)
    return expect[0] / row.med("total") if row.ok else None


def capped_items(n, rates, budget, floor):
    """Items for a row that may be too slow to run in full.

    ``budget`` is ``(full, capped)`` in seconds: all ``n`` items when the
    slowest of ``rates`` (items/s) does them within ``full`` seconds, else
    what it does in ``capped`` seconds (at least ``floor``), rounded down to
    a thousand.
    """
    full, capped = budget
    known = [r for r in rates if r]
    if not known:
        return min(n, floor)
    slowest = min(known)
    if n <= slowest * full:
        return n
    k = int(slowest * capped) // 1000 * 1000
    return min(n, max(floor, k))


def cap_note(what, k, n, speed, budget, probe="its probe run"):
    """The table note of a row capped by :func:`capped_items` (``speed`` None:
    the probe failed)."""
    if speed is None:
        return f"{what} ran over {k:,} items, not {n:,}: {probe} failed."
    return (f"{what} ran over {k:,} items, not {n:,}: {probe} did {speed:,.0f} "
            f"items/s, so all would take over {budget[0]:g} s; capped to ~{budget[1]:g} s "
            f"a run.")


@contextlib.contextmanager
def watchdog(seconds):
    """Dump every thread's stack and exit if the body runs too long.

    POSIX: ``signal.alarm``, no extra thread.  (``faulthandler``'s own timer
    is a C thread; a process with a thread that ``threading`` does not know
    changes how some systems fork, so it must not exist while we measure.)
    Elsewhere: ``faulthandler.dump_traceback_later``.
    """
    if not hasattr(signal, "SIGALRM"):
        faulthandler.dump_traceback_later(seconds, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
        return

    def expired(_signum, _frame):
        log(f"\n!!! a measurement took more than {seconds} s: stacks follow")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def find(rows, label):
    """The row called ``label`` if it has figures, else None."""
    return next((r for r in rows if r.label == label and r.ok), None)


# --------------------------------------------------------------------------
# printing


def table(headers, rows):
    """Left-align the first column, right-align the others."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]

    def fmt(cells):
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def serial_and_imap_rows(cfg, stages, source, expect, rep, tuned):
    """The serial row, and imap at defaults and tuned (when imap imports):
    returns ``(serial, defaults or None, rows)``."""
    serial = measure("serial, in-process", run_serial(), stages, source, add, expect, rep)
    rows = [serial]
    dflt = None
    if cfg["imap_ok"]:
        run_imap = _adapters().run_imap
        sm = cfg["start_method"]
        dflt = measure("imap (defaults)", run_imap, stages, source, add, expect, rep,
                       start_method=sm)
        rows.append(dflt)
        label = " ".join(f"{k}={v}" for k, v in tuned.items())
        rows.append(measure(f"imap {label} (tuned)", run_imap, stages,
                            source, add, expect, rep, start_method=sm, **tuned))
    return serial, dflt, rows


def speedup_rows(rows, serial, speedup=lambda row: True,
                 third=lambda row: f3(row.med("cpu"))):
    """Table rows ``[label, startup, run, third, speed-up]`` and errors; the
    third column is the parent's CPU time unless ``third`` says otherwise."""
    st = serial.med("total") if serial.ok else None
    out, errors = [], []
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-"])
            continue
        sp = ratio(st / r.med("total")) if st and speedup(r) else "-"
        out.append([r.label, f3(r.med("startup")), f3(r.med("total")), third(r), sp])
    return out, errors


def _adapters():
    import adapters
    return adapters


def run_serial():
    return _adapters().run_serial


def print_section(title, headers, rows, errors, notes):
    print()
    print(title)
    print("=" * len(title))
    print(table(headers, rows))
    for label, err in errors:
        print(f"  ! {label}: {err}")
    for n in notes:
        print(f"  {n}")
    sys.stdout.flush()


def describe_settings(settings):
    """``{"stride": 2, ...}`` as ``"stride 2, ..."`` (None values left out)."""
    return ", ".join(f"{k} {v}" for k, v in (settings or {}).items() if v is not None)


def settings_note(rows):
    """Note lines saying what the imap default-settings rows' IMaps reported
    for stride, buffer and chunksize after their last run (one line when
    they all agree)."""
    seen = {}
    for r in rows:
        if r.ok and "defaults" in r.label and r.label.startswith(("imap", "tiny", "cpu")):
            shown = describe_settings(r.extra("settings"))
            if shown:
                seen.setdefault(shown, []).append(r.label)
    if len(seen) == 1:
        (shown, labels), = seen.items()
        who = labels[0] if len(labels) == 1 else "imap default-settings rows"
        return [f"{who}: the IMap reported {shown} after its last run."]
    return [f"{', '.join(labels)}: the IMap reported {shown} after its last run."
            for shown, labels in seen.items()]


def f3(x):
    return f"{x:.3f}"


def f4(x):
    return f"{x:.4f}"


def rate(x):
    return f"{x:,.0f}"


def ratio(x):
    return f"{x:.2f}"


# --------------------------------------------------------------------------
# targets


def target(summary, section, what, wanted, value, passes, shown=ratio):
    """Add one target to the summary: ``passes(value)`` decides PASS or MISS;
    a ``value`` of None (not measured) is reported as n/a."""
    if value is None:
        summary.append((section, what, wanted, "n/a", None))
    else:
        summary.append((section, what, wanted, shown(value), bool(passes(value))))


def print_summary(summary, title):
    print()
    print(title)
    print("=" * len(title))
    rows = []
    for sec, what, wanted, value, ok in summary:
        verdict = {True: "PASS", False: "MISS", None: "n/a"}.get(ok, ok)
        rows.append([sec, what, wanted, value, verdict])
    print(table(["section", "measure", "target", "measured", "result"], rows))


# --------------------------------------------------------------------------
# other programs' CPU use


class ForeignCpu:
    """CPU time used by processes outside this run, over an interval.

    Busy time of the whole machine (``/proc/stat``) minus the CPU time of this
    process and all its descendants: what other programs took from the CPUs
    while we measured.  None where ``/proc`` is missing.
    """

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy(), _own()

    def share(self):
        """Foreign CPU as a fraction of all CPUs' time since creation."""
        busy = _busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        foreign = (busy - self.busy0) - (_own() - self.own0)
        return max(0.0, foreign) / (wall * (os.cpu_count() or 1))


def _busy():
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle, iowait
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def _own():
    """CPU time of this run: this process, its reaped children, and every
    live descendant with its own reaped children (forkserver workers are
    children of the fork server, not of this process)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in rss.tree_pids()[1:]:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    return total
