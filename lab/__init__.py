"""The socket failure lab: socket code under test, the faults that kill it, and the oracles that judge it.

Inside the lab's containers only the standard library is used; the host-side
modules (engine, toxics, cli) import their third-party dependencies lazily.
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
