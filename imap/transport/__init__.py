"""Transport: how items, functions and answers travel between the parent and
its workers (the parent's side).

Pickling rules (:mod:`~imap.transport.pickling`), modules sent by value
(:mod:`~imap.transport.byvalue`), the parent's half of shared memory for
buffers (:mod:`~imap.transport.shm`) and the wire format of batches and
answers (:mod:`~imap.transport.wire`). The worker's half of each is in
:mod:`imap.worker`.
"""
