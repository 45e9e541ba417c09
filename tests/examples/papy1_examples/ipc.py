"""Items passed between two IMaps as pickle files (dump_item, load_item)."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from imap import IMap, imports
from papy import Piper, Worker
from papy.util.func import dump_item, load_item


@imports(['os'])
def upstream(inbox):
    up_pid = os.getpid()  # noqa: F821 (bound by @imports)
    return str(up_pid)


@imports(['os'])
def downstream(inbox):
    up_pid = inbox[0]
    down_pid = os.getpid()  # noqa: F821 (bound by @imports)
    return "%s->%s" % (up_pid, down_pid)


if __name__ == "__main__":
    host1 = IMap()
    host2 = IMap()

    up = Worker((upstream, dump_item))
    dn = Worker((load_item, downstream))
    up_ = Piper(up, parallel=host1)
    dn_ = Piper(dn, parallel=host2)

    up_([['hello', 'world', 'hi', 'folks']])
    dn_([up_])

    up_.start()
    dn_.start()

    print(list(dn_))
