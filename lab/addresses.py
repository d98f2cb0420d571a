"""Where everything in the lab listens: host names, service ports, control ports, agent and Toxiproxy API.

Standard library only and free of logic, so every side imports it: the servers, the in-lab
runner and agents, the host's ``lab`` command and the tests. compose.yaml and
images/toxiproxy/toxiproxy.json cannot import Python; tests/unit/test_addresses.py reads them
and fails when they disagree with this file.

The three servers sit side by side in the server container, each with its own data port and
control port, and Toxiproxy fronts each data port on the same port number. "server" on the lab
network is the router (lab/inlab/agent/router.py), a NAT gateway to the server container on the
backend network, so every path to a server crosses it::

    client ──► toxiproxy:7000 ──► server:7000 = router ──► backend-server:7000   threaded   (control 7001)
    client ──► toxiproxy:7100 ──► server:7100 = router ──► backend-server:7100   selectors  (control 7101)
    client ──► toxiproxy:7200 ──► server:7200 = router ──► backend-server:7200   forking    (control 7201)
    client ──────────────────────► server:7000 = router ──► backend-server:7000   (the direct path)
    client ──────────────────────► server2:7400 = router ─► backend-server2:7400  threaded, standby (control 7401)
"""

from __future__ import annotations

SERVER_HOST = "server"          # the server's name on the lab network: the router, which forwards to it
BACKEND_SERVER_HOST = "backend-server"   # the server container's own name, on the backend network

# The second server host (failover): one threaded server that shares the first host's delivery
# log (a volume both mount), on ports of its own, which the router forwards to it. On the lab
# network "server2" is the router too; the path's faults never touch the standby's ports.
STANDBY_HOST = "server2"
BACKEND_STANDBY_HOST = "backend-server2"
STANDBY_PORT = 7400
STANDBY_CONTROL_PORT = 7401
STANDBY_AGENT_PORT = 9011      # server2-agent's API: not 9009, which the router forwards to the server-agent
ROUTER_HOST = "router"          # the NAT gateway between the lab network and the backend network
TOXIPROXY_HOST = "toxiproxy"
LOOPBACK = "127.0.0.1"

# Data ports of the lab's servers, by implementation; Toxiproxy listens on the same numbers.
SERVER_PORTS = {"threaded": 7000, "selectors": 7100, "forking": 7200}
# Each server's JSON-lines control port (behaviour, stats, delivery log).
CONTROL_PORTS = {"threaded": 7001, "selectors": 7101, "forking": 7201}
DEFAULT_SERVER = "threaded"
DEFAULT_PORT = SERVER_PORTS[DEFAULT_SERVER]
DEFAULT_CONTROL_PORT = CONTROL_PORTS[DEFAULT_SERVER]

# Ephemeral ports (net.ipv4.ip_local_port_range, set per container in compose.yaml): the client's
# and Toxiproxy's do not overlap. The router rewrites both sources to its one backend address and
# keeps their ports, so behind it a port still says who opened a connection, and two never collide.
CLIENT_PORT_RANGE = (32768, 45999)
TOXIPROXY_PORT_RANGE = (46000, 60999)

# The fault agent's API, on this port of the namespace it lives in (server:9009; 127.0.0.1:9009
# inside the client for the client-agent).
AGENT_PORT = 9009
# The router-agent's API (router:9010): not 9009, which the router forwards to the server-agent.
ROUTER_AGENT_PORT = 9010

TOXIPROXY_API_PORT = 8474
TOXIPROXY_API = f"http://{TOXIPROXY_HOST}:{TOXIPROXY_API_PORT}"

# Graded code runs in a sandbox container of its own that joins the client's network namespace
# (lab/sandbox/, lab/host/sandbox.py), as this uid. The lab's launcher inside it listens on the
# driver port of that namespace's loopback; the judge (the in-lab runner) dials it once per subject.
SANDBOX_UID = 10003
DRIVER_HOST = LOOPBACK
DRIVER_PORT = 7900
