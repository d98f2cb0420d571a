"""The socket failure lab: socket code under test, the faults that kill it, and the oracles that judge it.

Inside the lab's containers only the standard library is used. The host-only
modules (``cli``, ``views`` and the report modules use click and rich; the lab
tests use the Docker SDK and toxiproxy-python) are never imported there.
"""

from lab.errors import (
    BadFrame, BrokenPipe, ConnectError, ConnectionLost, ConnectRefused, ConnectTimeout, FrameTooLarge,
    IncompleteMessage, LabError, NoRoute, PeerClosed, PeerReset, PeerUnresponsive, ProtocolError,
    SendStalled,
)
from lab.timeouts import Timeouts

__version__ = "0.1.0"

__all__ = [
    "BadFrame", "BrokenPipe", "ConnectError", "ConnectionLost", "ConnectRefused", "ConnectTimeout",
    "FrameTooLarge", "IncompleteMessage", "LabError", "NoRoute", "PeerClosed", "PeerReset",
    "PeerUnresponsive", "ProtocolError", "SendStalled", "Timeouts", "__version__",
]
