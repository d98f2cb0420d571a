# Crash: SIGKILL the server process. The process dies at once; its kernel closes its
# sockets for it: a FIN, or an RST when unread data was still queued. The host stays up,
# so new connections are refused until the supervisor restarts the server (0.5 s later).
from __future__ import annotations

import time
from typing import Any

from lab.addresses import CONTROL_PORTS, SERVER_HOST, SERVER_PORTS
from lab.inlab.agent.client import AgentError
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, ServerParams, register
from lab.inlab.processes import describe, serving

GONE_WAIT = 3.0


@register
class Crash(Fault):
    name = "crash"
    params: ServerParams

    def __init__(self, ctx: FaultContext, params: ServerParams) -> None:
        super().__init__(ctx, params)
        self.old_pid: int | None = None
        self.signalled_wall: float | None = None   # time.time() just before SIGKILL was asked for

    def apply(self) -> None:
        agent, port = self.ctx.server_agent, SERVER_PORTS[self.params.server]
        before = serving(agent.processes(), port)
        self.signalled_wall = time.time()
        pids = agent.signal(self.params.server, "KILL")
        self.old_pid = pids[0] if pids else None
        if pids:
            self._wait_gone(self.old_pid)
        # A signal sent is not a process dead: the proof is that the pid which served the port
        # before is no longer in the process list (a zombie has no command line: it is not listed).
        listed = agent.processes()
        gone = before is not None and all(p.get("pid") != before["pid"] for p in listed)
        self.ctx.prove(f"the process serving port {port} was killed: its pid is gone", gone,
                       f"before: {describe(before)}; SIGKILL sent to pids {pids}; "
                       f"now serving: {describe(serving(listed, port))}")

    def _wait_gone(self, pid: int | None) -> None:
        """Wait until the killed server is gone; raises AgentError (a failed proof) if it is not."""
        agent = self.ctx.server_agent
        try:
            agent.wait_process(self.params.server, "gone", timeout=GONE_WAIT)
        except AgentError:
            # The supervisor starts the next server 0.5 s after the death; an agent slow to look
            # sees only that one. The old pid gone from the list is a death all the same.
            if pid in {p.get("pid") for p in agent.processes()}:
                raise

    def wait_restarted(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The server the supervisor started after the crash (the agent's entry), or None.

        Returns once the new server answers on its data and control ports, so its stats can
        be asked for at once (None if it never does). The restart goes into the timeline at
        the time the kernel says the new process started, not when this wait noticed it
        (clients may have reconnected in between).
        """
        from lab.inlab.runner import ScenarioAbort, wait_listening

        if self.old_pid is None:
            return None
        agent, server = self.ctx.server_agent, self.params.server
        try:
            pid = agent.wait_process(server, "new", not_pid=self.old_pid, timeout=timeout)
        except AgentError as exc:
            self.ctx.mark("lab", f"no new {server} server after the crash", reason=str(exc)[:200])
            return None
        proc = next((p for p in agent.processes() if p.get("pid") == pid), None)
        if proc is not None and proc.get("started") is not None:
            self.ctx.mark_at(proc["started"], "server", "restarted by the supervisor", pid=pid, server=server)
        else:
            self.ctx.mark("server", "restarted by the supervisor (start time unknown: marked when seen)", pid=pid)
        try:
            for port in (SERVER_PORTS[server], CONTROL_PORTS[server]):
                wait_listening(SERVER_HOST, port, timeout=timeout)
        except ScenarioAbort as exc:
            self.ctx.mark("lab", f"the new {server} server does not listen", reason=str(exc)[:200])
            return None
        return proc

    def clear(self) -> None:
        # Nothing to undo: the supervisor restarts the server by itself.
        pass
