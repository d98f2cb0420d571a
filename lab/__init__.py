"""The socket failure lab: socket code under test, the faults that kill it, and the oracles that judge it.

The folders say where their code runs:

=================  ==========================================================  ===============
``sockets/``       the socket code under test (framing, errors, robust, naive)  anywhere
``evidence/``      pcap files read back, each TCP connection's story            anywhere
``server/``        the lab's servers, their control port, the supervisor        server container
``inlab/``         scenario runner, faults, workload driver, fault agent        client, agents
``scenarios/``     the catalogue: one file per way a conversation dies          client container
``host/``          Docker, Compose, the topology, the ``lab`` command            host
``grading/``       static check, verdict rules, report cards                    host
``reports/``       evidence folders, HTML/Markdown, SVG, terminal views         host
``testing/``       in-memory streams, scripted sockets, loopback servers       tests
=================  ==========================================================  ===============

Everything that runs in a container (the first five folders, and the modules beside this
file but ``__main__.py``: ``addresses``, ``toolerrors``) uses the standard library only;
images/app/Dockerfile copies just those, and tests/unit/test_boundary.py fails when that copy
list drifts from this split, or on any import of click, rich, docker, toxiproxy, another
third-party module or a host-only module among them.
"""

# The socket errors and the timeouts object, as ``lab.PeerReset`` and ``lab.Timeouts``: imported
# on first use (PEP 562), so the many short processes of the lab (a healthcheck every second, each
# ``python3 -m lab....`` the runner starts) do not pay for dataclasses and inspect up front.
_ERRORS = ("AddressUnavailable", "BadFrame", "BrokenPipe", "ConnectError", "ConnectionLost", "ConnectRefused",
           "ConnectTimeout", "FrameTooLarge", "IncompleteMessage", "LabError", "NoRoute", "PeerClosed", "PeerReset",
           "PeerUnresponsive", "ProtocolError", "SendStalled")


def __getattr__(name: str) -> object:
    if name in _ERRORS:
        from lab.sockets import errors

        return getattr(errors, name)
    if name == "Timeouts":
        from lab.sockets.timeouts import Timeouts

        return Timeouts
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "AddressUnavailable", "BadFrame", "BrokenPipe", "ConnectError", "ConnectionLost", "ConnectRefused", "ConnectTimeout",
    "FrameTooLarge", "IncompleteMessage", "LabError", "NoRoute", "PeerClosed", "PeerReset",
    "PeerUnresponsive", "ProtocolError", "SendStalled", "Timeouts", "__version__",
]
