# Kill one forked child mid-message: the forking server's child that holds one client's
# connection is stopped (SIGSTOP), the client's next message arrives and waits unread in that
# child's socket, then the child gets SIGKILL. Its kernel closes the dead process's sockets
# for it and, because bytes were still unread, answers with an RST rather than a FIN. The
# listener and the other children are other processes: they go on. Nothing to undo.
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from lab.addresses import SERVER_PORTS
from lab.inlab.agent.client import AgentError
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, Server, param, register
from lab.inlab.processes import describe, serving

POLL = 0.02
STOP_WAIT = 2.0          # seconds for a SIGSTOP to take effect (state T) before the proof reads it


@dataclasses.dataclass(frozen=True)
class KillChildParams:
    """Which connection's child (by the client's local port), and when to kill it."""

    peer_port: int = param(ge=1, le=65535)           # the client's end of the connection
    server: Server = "forking"
    unread: int = param(1, ge=1)                     # bytes that must wait unread in the child before the kill
    unread_wait: float = param(3.0, gt=0, le=10)     # seconds to wait for them; then the kill goes ahead anyway


def holder(procs: list[dict[str, Any]], server: str, peer_port: int) -> dict[str, Any] | None:
    """The child of ``server`` holding the connection from ``peer_port``, as the agent lists it."""
    for proc in procs:
        if proc.get("role") == f"{server}-child":
            for sock in proc.get("sockets") or ():
                if sock["state"] != "LISTEN" and sock["remote"].rsplit(":", 1)[1] == str(peer_port):
                    return {**proc, "socket": sock}
    return None


def describe_child(proc: dict[str, Any] | None) -> str:
    if proc is None:
        return "no child holds it"
    sock = proc.get("socket") or {}
    return (f"pid {proc['pid']} (parent {proc.get('ppid')}, state {proc['state']}, {sock.get('state')}, "
            f"{sock.get('rx_queue')} bytes unread)")


@register
class KillChild(Fault):
    name = "kill-child"
    params: KillChildParams

    def __init__(self, ctx: FaultContext, params: KillChildParams) -> None:
        super().__init__(ctx, params)
        self.child: dict[str, Any] | None = None      # the holder before anything was sent
        self.parent: dict[str, Any] | None = None     # the listener then
        self.stopped = False
        self.killed = False
        self.kill_wall: float | None = None           # time.time() just before SIGKILL was asked for
        self.killed_at: float | None = None           # the same moment on the run's clock (ctx.mark)
        self.unread_at_kill: int | None = None
        self.error: str | None = None
        self._killer: threading.Thread | None = None

    def apply(self) -> None:
        agent, server, port = self.ctx.server_agent, self.params.server, self.params.peer_port
        procs = agent.processes(sockets=True)
        self.parent = serving(procs, SERVER_PORTS[server])
        self.child = holder(procs, server, port)
        pids = agent.signal(server, "STOP", peer_port=port)
        self.stopped = True
        # Read back, not assumed: the process that holds the connection is stopped, its listener is not.
        # A signal is delivered when its target next runs: on a busy machine (several labs at once)
        # that can be after this read, so wait for state T, a moment at most.
        deadline = time.monotonic() + STOP_WAIT
        while True:
            now = agent.processes(sockets=True)
            held, listener = holder(now, server, port), serving(now, SERVER_PORTS[server])
            if (held is not None and held["state"] == "T") or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        ok = (self.child is not None and held is not None and held["pid"] == self.child["pid"]
              and held["state"] == "T" and listener is not None and listener.get("state") != "T")
        self.ctx.prove(f"the {server} child holding the connection from :{port} is stopped, its listener is not", ok,
                       f"before: {describe_child(self.child)}; SIGSTOP sent to pids {pids}; "
                       f"now: {describe_child(held)}; listener {describe(listener)}")
        self._killer = threading.Thread(target=self._kill_when_unread, name=f"kill-child-{port}", daemon=True)
        self._killer.start()

    def _kill_when_unread(self) -> None:
        agent, server, port = self.ctx.server_agent, self.params.server, self.params.peer_port
        deadline = time.monotonic() + self.params.unread_wait
        unread = 0
        try:
            while True:
                held = holder(agent.processes(sockets=True), server, port)
                unread = int(held["socket"]["rx_queue"]) if held else 0
                if unread >= self.params.unread or time.monotonic() >= deadline:
                    break
                time.sleep(POLL)
            self.unread_at_kill = unread
            self.kill_wall = time.time()
            self.killed_at = self.ctx.mark("lab", f"SIGKILL to the child holding :{port}", unread=unread)
            agent.signal(server, "KILL", peer_port=port)
            self.killed = True
        except AgentError as exc:
            self.error = str(exc)
            self.ctx.mark("lab", f"kill-child :{port} failed", reason=str(exc)[:200])

    def wait_killed(self, timeout: float = 15.0) -> bool:
        """Wait for the kill; then prove the child is gone and its listener is the same process, alive."""
        if self._killer is not None:
            self._killer.join(timeout)
        server, port = self.params.server, self.params.peer_port
        if not self.killed:
            self.ctx.prove(f"the {server} child holding :{port} was killed", False,
                           self.error or f"no SIGKILL within {timeout:g} s")
            return False
        procs = self.ctx.server_agent.processes(sockets=True)
        pid = self.child["pid"] if self.child else None
        gone = pid is not None and all(p.get("pid") != pid for p in procs)
        listener = serving(procs, SERVER_PORTS[server])
        same = (listener is not None and self.parent is not None and listener.get("pid") == self.parent.get("pid")
                and listener.get("state") != "T")
        self.ctx.prove(f"the child that held :{port} died with {self.unread_at_kill} bytes unread; its listener lives",
                       gone and same and (self.unread_at_kill or 0) >= self.params.unread,
                       f"child {describe_child(self.child)}: {'gone' if gone else 'STILL LISTED'}; listener before "
                       f"{describe(self.parent)}, now {describe(listener)}; unread at the kill: "
                       f"{self.unread_at_kill} (wanted at least {self.params.unread})")
        return gone and same

    def clear(self) -> None:
        if self.stopped and not self.killed:
            self.stopped = False
            try:   # never leave a child stopped behind (the agent's reset would continue it too)
                self.ctx.server_agent.signal(self.params.server, "CONT", peer_port=self.params.peer_port)
            except AgentError:
                pass
