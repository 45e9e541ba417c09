"""produce=2: each result, a pair, becomes two items downstream."""
from papy import Piper


def l33t(inbox):
    word = inbox[0]
    return (word.replace('e', '3').replace('o', '0'),) * 2


if __name__ == "__main__":
    l33t_piper = Piper(l33t, produce=2)
    l33t_piper([['hello', 'world']])
    l33t_piper.start()

    print(list(l33t_piper))
