# Peer reboot: the server's host loses its connections without a word, and comes back.
# In the server's namespace every packet of the server's port is dropped (iptables DROP on
# INPUT and OUTPUT, the vanish fault's rules); the server process is SIGKILLed, so whatever
# its kernel says as it closes the sockets (FIN, or RST where unread data was queued) is
# dropped on the way out; the supervisor starts a new server; once that one listens, the
# rules go. The client's connection is now half-open: its kernel still has it ESTABLISHED,
# the server's side has no socket for it, so the next segment the client sends is answered
# with RST, and a client that sends nothing hears nothing at all.
from __future__ import annotations

import time
from typing import Any

from lab.addresses import CONTROL_PORTS, SERVER_HOST, SERVER_PORTS
from lab.inlab import tcptable
from lab.inlab.agent.client import AgentError
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, ServerParams, register
from lab.inlab.faults._iptables import per_direction
from lab.inlab.processes import Proc, describe, serving

RESTART_WAIT = 10.0


@register
class Reboot(Fault):
    name = "reboot"
    params: ServerParams

    def __init__(self, ctx: FaultContext, params: ServerParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.ids: list[str] = []
        self.before: Proc | None = None        # the process that served the port before the kill
        self.after: Proc | None = None         # the process that serves it when the rules go
        self.cut_wall: float | None = None     # time.time(): rules in place
        self.killed_wall: float | None = None  # just before SIGKILL was asked for
        self.opening_wall: float | None = None  # just before the rules' removal was asked for: the last
                                                 # moment the cut is known to be in place
        self.back_wall: float | None = None    # the rules removed: the path is open again
        self.dropped: dict[str, int] = {"in": 0, "out": 0}   # what the rules dropped while in place
        self.server_rows: list[tcptable.Row] = []   # the server's /proc/net/tcp on its port, just before
        self.client_rows: list[tcptable.Row] = []   # ... and the client's, at the same moment

    @property
    def port(self) -> int:
        return SERVER_PORTS[self.params.server]

    def apply(self) -> None:
        from lab.inlab.runner import ScenarioAbort, wait_listening

        agent, server, port = self.ctx.server_agent, self.params.server, self.port
        self.before = serving(agent.processes(), port)
        self.ids = list(agent.block(port=port, direction="both", action="drop"))
        self.active = True
        self.cut_wall = time.time()
        self.ctx.mark("lab", "reboot: the server's port is cut off", port=port)
        self.killed_wall = time.time()
        pids = agent.signal(server, "KILL")
        self.ctx.mark("lab", "reboot: SIGKILL sent", pids=",".join(map(str, pids)))
        old = self.before.get("pid") if self.before else (pids[0] if pids else None)
        try:
            if old is not None:
                agent.wait_process(server, "new", not_pid=old, timeout=RESTART_WAIT)
            # The data listener is up before the control port (lab.server.base.BaseServer.start);
            # the data port itself cannot be tried from here while it is cut off.
            wait_listening(SERVER_HOST, CONTROL_PORTS[server], timeout=RESTART_WAIT)
        except (AgentError, ScenarioAbort) as exc:
            self.ctx.mark("lab", "reboot: no new server came up", reason=str(exc)[:200])
        self.after = serving(agent.processes(), port)
        if self.after and self.after.get("started") is not None:
            self.ctx.mark_at(self.after["started"], "server", "new server process started",
                             pid=self.after.get("pid"))
        # Both kernels' tables at the last moment of the cut: the proof of a half-open connection.
        self.server_rows = agent.tcp_table(port)
        self.client_rows = [r for r in tcptable.read() if r.remote[1] == port]
        self.dropped = dict(per_direction(agent.counters(), self.ids, port, "DROP"))
        self._open()
        self.ctx.mark("lab", "reboot: the server's port is reachable again", dropped_in=self.dropped["in"],
                      dropped_out=self.dropped["out"])

    def _open(self) -> None:
        if self.active:
            self.active = False
            # The rules go somewhere inside the agent's call, so the cut ends between these two
            # stamps: a window "while cut off" must end at the first, one "after the cut" start
            # there too. A keepalive probe sent in between (robust's come every second) is
            # answered by the new server's RST before the second stamp.
            self.opening_wall = time.time()
            self.ctx.server_agent.unblock()
            self.back_wall = time.time()

    def facts(self) -> dict[str, Any]:
        return {"before": describe(self.before), "after": describe(self.after), "cut_wall": self.cut_wall,
                "killed_wall": self.killed_wall, "opening_wall": self.opening_wall,
                "back_wall": self.back_wall, "dropped": self.dropped}

    def clear(self) -> None:
        self._open()
