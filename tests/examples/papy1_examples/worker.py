"""A Worker called by hand on an inbox (a sequence with one item per pipe)."""
from papy import Worker


def l33t(inbox):
    word = inbox[0]
    return word.replace('e', '3')


if __name__ == "__main__":
    l33t_worker = Worker(l33t)

    for word in ['hello', 'world']:
        print(l33t_worker([word]))
