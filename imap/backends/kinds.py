"""The kinds of local worker pool an IMap may have (its ``worker_type``).

worker_type -> ``"module:class"`` under :mod:`imap.backends`. A new kind is a
module implementing :class:`~imap.backends.base.Backend` (with
``from_options``) and one line here; :class:`~imap.options.Options` accepts
exactly these, and :func:`imap.backends.make` imports a kind's module only
when an IMap uses it. This module imports nothing, so that the options can
read it without the backends.
"""

LOCAL = {
    "process": "process:ProcessBackend",
    "thread": "thread:ThreadBackend",
}
