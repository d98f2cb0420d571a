"""The socket code under test: framing, the error tree, deadlines, backoff, and the two implementations.

Standard library only; it runs on the host (loopback tests, benchmarks) and in the lab's containers.
"""
