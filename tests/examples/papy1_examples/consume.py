"""consume=2: one evaluation gets the next two inboxes."""
from papy import Piper


def nimm2(inbox):
    left_box, right_box = inbox
    left_word, right_word = left_box[0], right_box[0]
    return left_word + ' ' + right_word


if __name__ == "__main__":
    l33t_piper = Piper(nimm2, consume=2)
    l33t_piper([['hello', 'world', 'hi', 'folks']])  # four items in
    l33t_piper.start()

    out = list(l33t_piper)
    assert out == ['hello world', 'hi folks']  # two out
    print(out)
