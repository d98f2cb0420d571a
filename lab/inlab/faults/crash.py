# Crash: SIGKILL the server process. The process dies at once; its kernel closes its
# sockets for it: a FIN, or an RST when unread data was still queued. The host stays up,
# so new connections are refused until the supervisor restarts the server (0.5 s later).
from __future__ import annotations

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, ServerParams, register


@register
class Crash(Fault):
    name = "crash"
    params: ServerParams

    def __init__(self, ctx: FaultContext, params: ServerParams) -> None:
        super().__init__(ctx, params)
        self.old_pid: int | None = None

    def apply(self) -> None:
        pids = self.ctx.server_agent.signal(self.params.server, "KILL")
        self.old_pid = pids[0] if pids else None
        self.ctx.prove("server process was SIGKILLed", bool(pids), f"pids {pids}")

    def wait_restarted(self, timeout: float = 10.0) -> int | None:
        pid = self.ctx.server_agent.wait_process(self.params.server, "new", not_pid=self.old_pid, timeout=timeout)
        self.ctx.mark("server", "restarted by the supervisor", pid=pid)
        return pid

    def clear(self) -> None:
        # Nothing to undo: the supervisor restarts the server by itself.
        pass
