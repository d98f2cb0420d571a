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

from lab.sockets.errors import (
    AddressUnavailable, BadFrame, BrokenPipe, ConnectError, ConnectionLost, ConnectRefused, ConnectTimeout, FrameTooLarge,
    IncompleteMessage, LabError, NoRoute, PeerClosed, PeerReset, PeerUnresponsive, ProtocolError,
    SendStalled,
)
from lab.sockets.timeouts import Timeouts

__version__ = "0.1.0"

__all__ = [
    "AddressUnavailable", "BadFrame", "BrokenPipe", "ConnectError", "ConnectionLost", "ConnectRefused", "ConnectTimeout",
    "FrameTooLarge", "IncompleteMessage", "LabError", "NoRoute", "PeerClosed", "PeerReset",
    "PeerUnresponsive", "ProtocolError", "SendStalled", "Timeouts", "__version__",
]
