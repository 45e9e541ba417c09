"""A timed-out result is fetched later (skip=False) or given up (skip=True)."""
from multiprocessing import TimeoutError
from time import sleep

from imap import IMap

SLEEP = 'sleep'
AWAKE = 'awake'


def sleeper(element):
    if element == SLEEP:
        sleep(2)
    return element


ELEMENTS = (AWAKE, SLEEP, AWAKE, AWAKE)

if __name__ == "__main__":
    print("results, which timeout are **not** skipped")
    result_iterator = IMap(sleeper, ELEMENTS, skip=False)
    print(result_iterator.next(timeout=3))
    try:
        result_iterator.next(timeout=1)
    except TimeoutError:
        print('timout')
    print(result_iterator.next(timeout=3))
    print(result_iterator.next(timeout=3))
    print(result_iterator.next(timeout=3))
    print("got 4 results\n")

    print("results, which timeout are skipped")
    result_iterator = IMap(sleeper, ELEMENTS, skip=True)
    print(result_iterator.next(timeout=3))
    try:
        result_iterator.next(timeout=1)
    except TimeoutError:
        print('timout')
    print(result_iterator.next(timeout=3))
    print(result_iterator.next(timeout=3))
    print("got 3 results\n")
