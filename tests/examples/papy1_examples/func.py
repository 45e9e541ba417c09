"""@imports binds a module in a function's globals where the function runs."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
from imap import imports


@imports(['os'])
def hello_you(inbox):
    name = inbox[0]
    print("hello %s I am %s" % (name, os.getpid()))  # noqa: F821 (bound by @imports)


if __name__ == "__main__":
    hello_you(['world'])
