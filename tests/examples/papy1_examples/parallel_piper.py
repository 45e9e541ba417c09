"""A lone piper evaluated on an IMap."""
from imap import IMap
from papy import Piper


def l33t(inbox):
    word = inbox[0]
    return word.replace('e', '3').replace('o', '0')


if __name__ == "__main__":
    numap = IMap()

    l33t_piper = Piper(l33t, parallel=numap)
    l33t_piper([['hello', 'world']])
    l33t_piper.start()

    print(list(l33t_piper))
