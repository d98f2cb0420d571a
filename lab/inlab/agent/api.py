"""The fault agent's API server: JSON lines over TCP, one reply per request, on :data:`lab.addresses.AGENT_PORT`.

:mod:`lab.server.jsonlines` does the framing and the bounds (request size,
idle and reply timeouts, connection limit); :meth:`Agent.handle
<lab.inlab.agent.service.Agent.handle>` answers each request, and every
request is logged. :mod:`lab.inlab.agent.client` is the other end.
"""

from __future__ import annotations

from typing import Any

from lab.addresses import AGENT_PORT
from lab.inlab.agent.log import emit
from lab.inlab.agent.service import Agent
from lab.server.jsonlines import JsonLinesServer

MAX_REQUEST = 64 * 1024          # bytes in one request line; requests are tiny
IDLE_TIMEOUT = 30.0              # a connection that sends nothing for this long is closed
SEND_TIMEOUT = 30.0              # a client that never reads its reply does not pin a thread
MAX_CONNECTIONS = 16


class AgentApiServer(JsonLinesServer):
    """The agent's API: :mod:`lab.server.jsonlines` framing and bounds, :meth:`Agent.handle` for each request::

        with AgentApiServer(Agent(), "127.0.0.1", 0) as srv:   # port 0: pick a free one
            print(srv.port)
    """

    name = "agent-api"

    def __init__(self, agent: Agent, host: str = "0.0.0.0", port: int = AGENT_PORT, *,
                 idle_timeout: float = IDLE_TIMEOUT, max_request: int = MAX_REQUEST,
                 max_connections: int = MAX_CONNECTIONS, poll: float = 0.2) -> None:
        self.agent = agent
        super().__init__(host, port, poll=poll, idle_timeout=idle_timeout, max_line=max_request,
                         reply_timeout=SEND_TIMEOUT, max_connections=max_connections)

    def handle(self, request: Any) -> dict[str, Any]:
        reply = self.agent.handle(request)
        op = request.get("op") if isinstance(request, dict) else None
        emit("request", op=op, ok=reply["ok"], **({} if reply["ok"] else {"error": reply["error"]}))
        return reply

    def not_json(self, exc: ValueError) -> dict[str, Any]:
        return {"ok": False, "error": f"request is not valid JSON ({exc}); send one JSON object per line, "
                                      'e.g. {"op": "ping"}'}

    def busy(self) -> dict[str, Any]:
        return {"ok": False, "error": f"agent busy: {self.max_connections} connections open; retry shortly"}
