"""The sandbox: where submitted code runs, apart from the judge (see docs/grading.md).

Runs inside the sandbox container only (standard library only): the launcher that
starts one submission process per driver connection, the driver protocol both sides
speak, and the adapter that serves that protocol for a Python file with ``MySocket``.
"""
