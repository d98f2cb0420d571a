"""Start the fault agent: isolate the namespace, serve the API until SIGTERM, undo every fault on the way out.

Compose runs it in each agent container as ``python3 -m lab.inlab.agent [--host H] [--port P]
[--sandbox-uid UID]``. It cuts the namespace off from everything but the lab
(:func:`~lab.inlab.agent.commands.isolate`), flushes any rules a previous agent left; with
``--sandbox-uid`` (the client-agent only) it installs the sandbox's firewall for that uid
(:mod:`~lab.inlab.agent.sandboxrules`) and refuses to start without it, so the healthcheck never
passes while graded code could be unrestricted; then it serves
:class:`~lab.inlab.agent.api.AgentApiServer` on :data:`lab.addresses.AGENT_PORT` until SIGTERM
or SIGINT, and resets every fault before it exits, so the namespace is left as it was found
(except the sandbox's baseline, which stays: it fails closed).
"""

from __future__ import annotations

import argparse
import os
import signal as signals
import sys
import threading

from lab.addresses import AGENT_PORT, SANDBOX_UID
from lab.inlab.agent import router
from lab.inlab.agent.api import AgentApiServer
from lab.inlab.agent.commands import CommandRunner, isolate
from lab.inlab.agent.log import emit
from lab.inlab.agent.requests import OpFailed
from lab.inlab.agent.service import Agent


def _forward(text: str) -> tuple[str, tuple[int, ...]]:
    try:
        return router.parse_forward(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.inlab.agent", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=AGENT_PORT)
    parser.add_argument("--sandbox-uid", type=int, default=None,
                        help=f"guard graded code running as this uid (the client-agent: {SANDBOX_UID})")
    parser.add_argument("--route-to", metavar="HOST", default=None,
                        help="be the router: NAT the server's ports to HOST on the other network "
                             "(the router-agent: backend-server)")
    parser.add_argument("--also", metavar="HOST=PORT,...", action="append", default=[], type=_forward,
                        help="with --route-to: also forward these ports to HOST on that network "
                             "(the router-agent: the standby server, backend-server2=7400,7401)")
    opts = parser.parse_args(argv)
    if opts.also and opts.route_to is None:
        parser.error("--also forwards ports as the router does: it needs --route-to")
    removed = isolate()
    emit("isolated", removed=removed)
    runner = CommandRunner()
    agent = Agent(runner, sandbox_uid=opts.sandbox_uid, api_port=opts.port, forwarding=opts.route_to is not None)
    if opts.route_to is not None:
        # Before the API listens (the healthcheck waits for it): a lab whose router does not route
        # must never look healthy.
        try:
            route = agent.install_router(opts.route_to, opts.also)
        except (OpFailed, OSError, ValueError) as exc:
            emit("router-failed", target=opts.route_to, error=str(exc))
            return 1
        emit("routing", **route)
    try:
        agent.op_unblock()  # a restarted agent starts from a clean chain
    except OpFailed as exc:
        emit("iptables-unavailable", error=str(exc))
    if opts.sandbox_uid is not None:
        # Before the API listens (the healthcheck waits for it): never a moment the uid is unrestricted.
        try:
            baseline = agent.install_sandbox([])
        except OpFailed as exc:
            emit("sandbox-unguarded", uid=opts.sandbox_uid, error=str(exc))
            return 1
        emit("sandbox-guarded", uid=opts.sandbox_uid, rules=baseline["rules"], ipv6=baseline["ipv6"])
    stop = threading.Event()
    for sig in (signals.SIGTERM, signals.SIGINT):
        signals.signal(sig, lambda *_: stop.set())
    with AgentApiServer(agent, opts.host, opts.port) as server:
        emit("listening", host=opts.host, port=server.port)
        while not stop.wait(0.5):
            if os.getpid() == 1:  # the client-agent is its namespace's init: adopt and reap orphans
                runner.reap_orphans()
        try:
            agent.op_reset()  # leave the namespace as we found it
        except OpFailed as exc:
            emit("reset-failed", error=str(exc))
    emit("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
