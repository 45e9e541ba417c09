"""A workflow in six steps: functions, workers, an engine, nodes, graph, run.

The one change of this port: ``nubio`` is the stand-in next to this file.
"""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from nubio import AaSeq, NtSeq

from imap import IMap, imports
from papy import Piper, Plumber, Worker


# Step 1: worker functions. clean_seq makes an amino- or nucleic-acid
# sequence of a raw string and applies fixes, e.g.
# clean_seq(['AGA.TA'], type='aa', fixes=[('.', '-')])
def clean_seq(inbox, type, fixes):
    seq = inbox[0]
    if type == 'aa':
        arr = AaSeq(seq)
    elif type == 'nt':
        arr = NtSeq(seq)
    else:
        raise ValueError("unknow sequence type %s" % type)
    for bad, good in fixes:
        arr.str('replace', bad, good)
    return arr


# timestamp notes the time in the sequence's meta data; @imports makes the
# time module available wherever it runs.
@imports(['time'])
def timestamp(inbox):
    arr = inbox[0]
    arr.meta['timestamp'] = "%s_%s_%s@%s:%s:%s" % time.localtime()[0:6]  # noqa: F821
    return arr


# Step 2: workers (functions with their arguments)
cleaner = Worker(clean_seq, kwargs={'type': 'aa', 'fixes': [('.', '-')]})
stamper = Worker(timestamp)

if __name__ == "__main__":
    # Step 3: the computational resource, every local processor
    local_computer = IMap()

    # Step 4: the processing nodes, both on that resource; the stamper's
    # results are kept (tracked)
    cleaner_node = Piper(cleaner, parallel=local_computer)
    stamper_node = Piper(stamper, parallel=local_computer, track=True)

    # Step 5: the graph
    workflow = Plumber()
    workflow.add_pipe((cleaner_node, stamper_node))

    # Step 6: run it in the background and wait for the end of the input
    workflow.start([['AGA.TA', 'TG..AA']])
    workflow.run()
    workflow.wait()
    results = workflow.stats['pipers_tracked'][stamper_node][0]
    for seq in results.values():
        print("Object \"%s\" has time stamp: %s " % (seq, seq.meta['timestamp']))
