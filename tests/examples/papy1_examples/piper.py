"""A lone piper evaluated inline (lazily, by whoever reads it)."""
from papy import Piper


def l33t(inbox):
    word = inbox[0]
    return word.replace('e', '3').replace('o', '0')


if __name__ == "__main__":
    l33t_piper = Piper(l33t)
    l33t_piper([['hello', 'world']])
    l33t_piper.start()

    print(list(l33t_piper))
