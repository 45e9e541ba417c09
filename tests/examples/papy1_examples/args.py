"""A task with extra positional and keyword arguments for its function."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from imap import IMap


def hello_world(element, *args, **kwargs):
    print("Hello element: %s " % element, end=" ")
    print("Hello args: %s" % (args,), end=" ")
    print("Hello kwargs: %s" % (kwargs,))
    return element


ELEMENTS = ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')

if __name__ == "__main__":
    result_iterator = IMap(hello_world, ELEMENTS,
                           args=('arg_0', 'arg_1'),
                           kwargs={'kwarg_0': 'val_0', 'kwarg_1': 'val_1'})
    results = tuple(result_iterator)
    assert results == ('element_0', 'element_1', 'element_2', 'element_3', 'element_4')
