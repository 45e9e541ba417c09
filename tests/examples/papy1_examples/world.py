"""The smallest IMap: one function over a tuple, on local processes."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from imap import IMap


def hello_world(element):
    print("Hello element: %s" % element)
    return element


ELEMENTS = ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')

if __name__ == "__main__":
    result_iterator = IMap(hello_world, ELEMENTS)
    results = tuple(result_iterator)
    assert results == ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')
