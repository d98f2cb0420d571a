# Crash: SIGKILL the server process. The process dies at once; its kernel closes its
# sockets for it: a FIN, or an RST when unread data was still queued. The host stays up,
# so new connections are refused until the supervisor restarts the server (0.5 s later).
from __future__ import annotations

from typing import Any

from lab.inlab.faults import Fault, register, server_param


@register
class Crash(Fault):
    name = "crash"

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        self.server = server_param(params)
        self.old_pid: int | None = None

    def apply(self) -> None:
        pids = self.ctx.server_agent.signal(self.server, "KILL")
        self.old_pid = pids[0] if pids else None
        self.ctx.prove("server process was SIGKILLed", bool(pids), f"pids {pids}")

    def wait_restarted(self, timeout: float = 10.0) -> int:
        pid = self.ctx.server_agent.wait_process(self.server, "new", not_pid=self.old_pid, timeout=timeout)
        self.ctx.mark("server", "restarted by the supervisor", pid=pid)
        return pid

    def clear(self) -> None:
        # Nothing to undo: the supervisor restarts the server by itself.
        pass
