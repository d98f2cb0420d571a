"""Test helpers for the lab: a server in background threads, and fakes that stand in for sockets.

    running_server(impl, state_dir=None, ...)   a started server on 127.0.0.1 (restartable)
    memory_stream_pair(...)                     two connected in-memory socket-like ends, with fault hooks
    ScriptedSocket([Recv(b"..."), Send(3), Fail("recv", ConnectionResetError(...)), ...])

Standard library only; nothing here opens a socket except running_server.
"""

from __future__ import annotations

from lab.testing.memory import MemoryStream, memory_stream_pair
from lab.testing.scripted import Fail, Recv, ScriptedSocket, ScriptError, Send
from lab.testing.server import HOST, RunningServer, running_server

__all__ = ["HOST", "RunningServer", "running_server", "MemoryStream", "memory_stream_pair",
           "ScriptedSocket", "Send", "Recv", "Fail", "ScriptError"]
