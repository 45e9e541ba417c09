"""Section 6: 2 remote workers on one local imap-server against 2 processes.

Every imap row here, remote or not, takes its warm-up through the input (a
generator that yields the warm-up tokens, then waits for the clock): remote
workers cannot be held in their initializer (the IMap runs it while it
connects), and the rows compared must be measured alike.
"""

import functools

import adapters as ad
import harness as h
import workloads as wl

NAME = "remote"

TUNED = dict(stride=1024, buffer=1024, chunksize=256)


TINY_TARGET = "tiny items/s at defaults: remote / processes"
CPU_TARGET = "CPU speed-up at defaults: remote / processes"


def run(cfg, summary):
    if not cfg["imap_ok"]:
        h.print_section("6. Remote", ["system"], [], [], ["skipped: imap is not importable."])
        h.target(summary, "remote", TINY_TARGET, ">= 0.80", None, None)
        h.target(summary, "remote", CPU_TARGET, ">= 0.95", None, None)
        return
    import cloudpickle

    from imap.embedded import local

    # The server has no copy of this folder: send the workloads by value.
    cloudpickle.register_pickle_by_value(wl)
    n_tiny, n_cpu = cfg["tiny_items"], cfg["cpu_items"]
    burn = functools.partial(wl.burn, n=cfg["n_cpu"])
    cpu_src, cpu_expect = functools.partial(range, n_cpu), h.ints_expect(n_cpu)
    rep, fast = cfg["repeats"], max(cfg["repeats"], cfg["repeats_fast"])
    sm = cfg["start_method"]
    local_opts = dict(gate="input", start_method=sm)
    h.log(f"[remote] {h.WORKERS} remote workers on a local imap-server")
    with local(h.WORKERS) as remote:
        def tiny(label, k, repeats, **options):
            return h.measure(label, ad.run_imap, [wl.inc], functools.partial(range, k),
                             h.add, h.ints_expect(k), repeats, items=k, **options)

        probe = min(n_tiny, cfg["probe_items"])
        speeds = [h.probe_rate(label, ad.run_imap, [wl.inc], functools.partial(range, probe),
                               h.add, h.ints_expect(probe), **opts)
                  for label, opts in (("tiny: remote (defaults)", dict(remote=remote)),
                                      ("tiny: processes (defaults)", local_opts))]
        k = h.capped_items(n_tiny, speeds, cfg["default_budget"], probe)
        suffix = "" if k == n_tiny else f" [{k:,} items]"
        t_remote = tiny(f"tiny: remote (defaults){suffix}", k, rep, remote=remote)
        t_local = tiny(f"tiny: processes (defaults){suffix}", k, rep, **local_opts)
        serial = h.measure("serial, in-process", ad.run_serial, [burn], cpu_src, h.add,
                           cpu_expect, rep)
        c_remote = h.measure("cpu: remote (defaults)", ad.run_imap, [burn], cpu_src, h.add,
                             cpu_expect, rep, remote=remote)
        c_local = h.measure("cpu: processes (defaults)", ad.run_imap, [burn], cpu_src,
                            h.add, cpu_expect, rep, **local_opts)
        rows = [t_remote, t_local,
                tiny("tiny: remote, stride=1024 buffer=1024 chunksize=256 (tuned)", n_tiny,
                     fast, remote=remote, **TUNED),
                tiny("tiny: processes, same (tuned)", n_tiny, fast, **local_opts, **TUNED),
                serial, c_remote, c_local]
        h.run_interleaved(rows)

    out, errors = h.speedup_rows(
        rows, serial, speedup=lambda r: r.label.startswith("cpu"),
        third=lambda r: h.rate((r.items or n_cpu) / r.med("total")))
    notes = ["tiny: x + 1 over the tiny section's ints; cpu: the CPU section's work; "
             "speed-up = serial time / run time;",
             "every imap row's input is a generator here (the warm-up goes through it)."]
    if k < n_tiny:
        notes.append(h.cap_note("the tiny default-settings rows", k, n_tiny,
                                min((s for s in speeds if s), default=None),
                                cfg["default_budget"],
                                probe="the slower probe run"))
    h.print_section(
        f"6. Remote: {h.WORKERS} remote workers (one local imap-server) vs "
        f"{h.WORKERS} processes",
        ["system", "startup s", "run s", "items/s", "speed-up"], out, errors,
        notes + h.settings_note(rows))

    v = h.paired_ratio(t_local, t_remote)
    h.target(summary, "remote", TINY_TARGET, ">= 0.80", v, lambda x: x >= 0.8)
    v = h.paired_ratio(c_local, c_remote)
    h.target(summary, "remote", CPU_TARGET, ">= 0.95", v, lambda x: x >= 0.95)
