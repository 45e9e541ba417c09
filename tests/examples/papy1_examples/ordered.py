"""ordered=True: results in input order; ordered=False: as they are computed."""
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
    print("if ordered results are in the order of the input")
    result_iterator = IMap(sleeper, ELEMENTS, ordered=True)
    results = tuple(result_iterator)
    print('got: ', results)

    print("if not ordered results are in the order of the computation")
    result_iterator = IMap(sleeper, ELEMENTS, ordered=False)
    results = tuple(result_iterator)
    print('got: ', results)
