"""NSQ's command-line utilities on the Trio client.

One module per tool (``to_nsq``, ``nsq_tail``, ``nsq_stat``, ``nsq_to_file``,
``nsq_to_http``, ``nsq_to_nsq``), each with NSQ 1.3's flags and a ``main()`` that the
console script of the same name calls. Shared pieces: :mod:`apps._cli` (flags, errors,
signals), :mod:`apps._nsq` (client settings from flags), :mod:`apps._select`
(destination choice and request timing).
"""
