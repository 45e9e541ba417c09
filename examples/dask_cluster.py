"""Tasks on a Dask cluster: a chain of IMap tasks whose batches run as Dask tasks.

The example starts a ``distributed.LocalCluster`` itself (2 worker
processes on this machine), so it runs anywhere the ``dask`` extra is
installed (``pip install 'papy-imap[dask]'``). Against a real cluster, give
the scheduler's address instead and drop the LocalCluster::

    with IMap(executor="tcp://scheduler-host:8786") as m:
        ...

or an existing ``distributed.Client`` (for TLS, pass ``security=`` to it);
see doc/scaling.rst. The input is drawn lazily and at most a buffer of
items is alive at once: the generator below is never read ahead of need.
"""

import os

from imap import IMap


def reads(n):
    """An input read lazily, as from a file or a socket."""
    for i in range(n):
        yield f"record {i:03d}"


def parse(line):
    return int(line.split()[1])


def score(x):
    return (x * x, os.getpid())   # runs in a Dask worker process


if __name__ == "__main__":
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        with IMap(executor=client) as m:
            parsed = m.add_task(parse, reads(200))
            scored = m.add_task(score, parsed)
            m.start()
            results = list(scored)
            workers = m.status().workers
        pids = {pid for _, pid in results}
        print(f"Dask cluster with {workers} worker threads; scored in {len(pids)} "
              f"worker process(es)")
        print(f"first: {results[0][0]}, last: {results[-1][0]}")
        print(f"done: {len(results)} results, as expected: "
              f"{[v for v, _ in results] == [x * x for x in range(200)]}")
