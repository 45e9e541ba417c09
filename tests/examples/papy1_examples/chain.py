"""Three chained tasks of one IMap: each eats the results of the one before."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from imap import IMap


def source(element):
    print("in source: %s" % (element,))
    return element


def pipe(element):
    print("in pipe: %s" % (element,))
    return element


def sink(element):
    print("in sink: %s" % (element,))
    return element


ELEMENTS = ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')

if __name__ == "__main__":
    nu_chain = IMap()
    source_out = nu_chain.add_task(source, ELEMENTS)
    pipe_out = nu_chain.add_task(pipe, source_out)
    sink_out = nu_chain.add_task(sink, pipe_out)
    nu_chain.start()

    results = tuple(sink_out)
    assert results == ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')
