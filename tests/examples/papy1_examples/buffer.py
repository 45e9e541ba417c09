"""The buffer bounds the tasklets evaluated ahead of the results taken."""
from time import sleep

from imap import IMap


def printer(element):
    print(element)
    return element


LEFT_INPUT = ('L0', 'L1', 'L2', 'L3')
RIGHT_INPUT = ('R0', 'R1', 'R2', 'R3')

# Two tasks, stride 2, buffer 6: the weave draws L0 L1 R0 R1 L2 L3, then
# waits; taking L0 and L1 frees two slots, for R2 and R3.

if __name__ == "__main__":
    numap = IMap(stride=2, buffer=6)
    left_iter = numap.add_task(printer, LEFT_INPUT)
    right_iter = numap.add_task(printer, RIGHT_INPUT)

    print("first 6:")
    numap.start()
    sleep(1)

    print("last 2:")
    L0 = next(left_iter)
    L1 = next(left_iter)

    R0 = next(right_iter)
    R1 = next(right_iter)
    L2 = next(left_iter)
    L3 = next(left_iter)
    R2 = next(right_iter)
    R3 = next(right_iter)

    assert (L0, L1, L2, L3) == LEFT_INPUT
    assert (R0, R1, R2, R3) == RIGHT_INPUT
