"""The socket code under test: framing, the error tree, deadlines, backoff, the two implementations.

``naive`` is the HOWTO-style connection, ``robust`` the careful one, and ``reliable`` the
sender that delivers a stream exactly once across reconnects on top of ``robust``.

Standard library only; it runs on the host (loopback tests, benchmarks) and in the lab's containers.
"""
