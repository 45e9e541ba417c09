"""Remote hosts seen from the parent: opening an authenticated connection and
uploading the agent (:mod:`~imap.remote.connect`), and taking back a host
that came back (:mod:`~imap.remote.rejoin`). The public face of remote work
is :mod:`imap.server`, :mod:`imap.embedded` and :mod:`imap.auth`.
"""
