# Out of descriptors: the server process's soft RLIMIT_NOFILE is lowered (the server's control
# port, "behave" with "nofile": the server calls setrlimit on itself, no capability needed).
# Nothing changes on the wire at once: descriptors already open stay open. But once the process
# holds that many, accept() fails with EMFILE: the kernel has completed the handshakes, so the
# new connections wait in the listen backlog (SYN, SYN-ACK, ACK, then nothing). Cleared by the
# control port's "reset", which restores the limit the server started with.
from __future__ import annotations

import dataclasses

from lab.addresses import SERVER_PORTS
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, Server, param, register
from lab.inlab.processes import describe, serving
from lab.server.behaviour import NOFILE_MAX, NOFILE_MIN


@dataclasses.dataclass(frozen=True)
class NofileParams:
    server: Server = "threaded"
    limit: int = param(32, ge=NOFILE_MIN, le=NOFILE_MAX)   # the soft limit on open descriptors


@register
class Nofile(Fault):
    name = "nofile"
    params: NofileParams

    def __init__(self, ctx: FaultContext, params: NofileParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        self.ctx.server_control(self.params.server, cmd="behave", nofile=self.params.limit)
        self.active = True
        # The kernel's word, through the agent's /proc/PID/limits, of the process behind the port
        # the clients use: not the server's reply, which a wrong request would get right too.
        port = SERVER_PORTS[self.params.server]
        proc = serving(self.ctx.server_agent.processes(), port)
        got = proc.get("nofile") if proc else None
        self.ctx.prove(f"the kernel holds the server on port {port} to {self.params.limit} open files",
                       got == self.params.limit,
                       f"{describe(proc)}: /proc/PID/limits says Max open files (soft) {got}; "
                       f"asked {self.params.limit}")

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_control(self.params.server, cmd="reset")
