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

Everything that runs in a container (the first five, and this file) uses the standard
library only; images/app/Dockerfile copies just those, and tests/unit/test_boundary.py fails
on any import of click, rich, docker, toxiproxy or a host-only module among them.
"""

from lab.sockets.errors import (
    BadFrame, BrokenPipe, ConnectError, ConnectionLost, ConnectRefused, ConnectTimeout, FrameTooLarge,
    IncompleteMessage, LabError, NoRoute, PeerClosed, PeerReset, PeerUnresponsive, ProtocolError,
    SendStalled,
)
from lab.sockets.timeouts import Timeouts

__version__ = "0.1.0"

__all__ = [
    "BadFrame", "BrokenPipe", "ConnectError", "ConnectionLost", "ConnectRefused", "ConnectTimeout",
    "FrameTooLarge", "IncompleteMessage", "LabError", "NoRoute", "PeerClosed", "PeerReset",
    "PeerUnresponsive", "ProtocolError", "SendStalled", "Timeouts", "__version__",
]
