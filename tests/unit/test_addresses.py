"""compose.yaml and images/toxiproxy/toxiproxy.json say the same hosts and ports as lab/addresses.py.

Neither file can import Python, so this reads them: compose.yaml as plain text (PyYAML is
not a dependency), toxiproxy.json with the standard json module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lab import addresses

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
TOXIPROXY_JSON = ROOT / "images" / "toxiproxy" / "toxiproxy.json"


def _services(text: str) -> dict[str, str]:
    """compose.yaml's services, each as its block of text (from its name to the next service)."""
    body = re.search(r"^services:\n(.*?)(?=^\S)", text, re.S | re.M)
    assert body, "compose.yaml has no top-level 'services:'"
    parts = re.split(r"^  ([A-Za-z0-9_-]+):\s*$", body.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _server_commands(block: str) -> dict[str, dict[str, int]]:
    """Each `python3 -m lab.server` in the server's command: its --impl and its ports."""
    found = {}
    for part in re.split(r"^\s*- --impl=", block, flags=re.M)[1:]:
        impl = part.split("\n", 1)[0].strip()
        ports = {key: int(value) for key, value in re.findall(r"^\s*- --(port|control-port)=(\d+)\s*$", part, re.M)}
        found[impl] = ports
    return found


def test_compose_names_the_services_the_addresses_name() -> None:
    services = _services(COMPOSE.read_text())
    assert addresses.SERVER_HOST in services
    assert addresses.TOXIPROXY_HOST in services


def test_compose_starts_each_server_on_its_data_and_control_port() -> None:
    server = _services(COMPOSE.read_text())[addresses.SERVER_HOST]
    commands = _server_commands(server)
    assert commands == {impl: {"port": addresses.SERVER_PORTS[impl], "control-port": addresses.CONTROL_PORTS[impl]}
                        for impl in addresses.SERVER_PORTS}, (
        f"compose.yaml's server command gives {commands}; lab/addresses.py says data ports "
        f"{addresses.SERVER_PORTS}, control ports {addresses.CONTROL_PORTS}")


def _healthcheck_test(block: str) -> str:
    health = re.search(r"healthcheck:\s*\n(?:\s*#.*\n)*\s*test: (\[[^\]]*\])", block)
    assert health, "no healthcheck test"
    return health.group(1)


def test_the_labs_one_healthcheck_reads_the_servers_ports_from_the_kernel_table() -> None:
    # A probe connection to a server would be one no scenario made: counted, accepted, a descriptor
    # spent. The server-agent, in the server's namespace, reads the ports from its kernel table.
    test = _healthcheck_test(_services(COMPOSE.read_text())["client-agent"])
    asked = re.search(rf'"--agent", "{addresses.SERVER_HOST}:{addresses.AGENT_PORT}=([\d,]+)"', test)
    assert asked, test
    checked = {int(p) for p in asked.group(1).split(",")}
    assert checked == {*addresses.SERVER_PORTS.values(), *addresses.CONTROL_PORTS.values()}
    standby = re.search(rf'"--agent", "{addresses.STANDBY_HOST}:{addresses.STANDBY_AGENT_PORT}=([\d,]+)"', test)
    assert standby, test
    assert {int(p) for p in standby.group(1).split(",")} == {addresses.STANDBY_PORT, addresses.STANDBY_CONTROL_PORT}
    # What it connects to: its own agent, Toxiproxy's API, and the other agents (by their API).
    dialled = set(re.findall(r'"([a-z0-9.-]+:\d+)"', test))
    assert dialled == {f"127.0.0.1:{addresses.AGENT_PORT}", f"{addresses.TOXIPROXY_HOST}:{addresses.TOXIPROXY_API_PORT}",
                       f"{addresses.ROUTER_HOST}:{addresses.ROUTER_AGENT_PORT}"}, dialled
    assert '"--isolated"' in test


def test_one_healthcheck_for_the_whole_lab() -> None:
    from lab.host.topology import HEALTHCHECKED

    services = _services(COMPOSE.read_text())
    checked = {name for name, block in services.items() if "    healthcheck:" in block}
    assert checked == set(HEALTHCHECKED) == {"client-agent"}
    # Each namespace's isolation is still checked: the client's by the client-agent beside it, the
    # router's and the server's by their agents, which the healthcheck asks.
    test = _healthcheck_test(services["client-agent"])
    assert 'network_mode: "service:client"' in services["client-agent"]
    for host, agent in (("server", "server-agent"), ("router", "router-agent"), ("server2", "server2-agent")):
        assert f'network_mode: "service:{host}"' in services[agent]
        assert f'"--agent", "{host}:' in test
    # Nothing waits on another's health at start (the one-off scenario aside): all start at once.
    started = {name: block for name, block in services.items() if "profiles:" not in block}
    assert not any("service_healthy" in block for block in started.values())


def test_compose_agents_listen_where_the_healthcheck_asks() -> None:
    services = _services(COMPOSE.read_text())
    agents = {name: block for name, block in services.items() if "lab.inlab.agent" in block}
    assert set(agents) == {"server-agent", "client-agent", "router-agent", "server2-agent"}
    assert f'"--port", "{addresses.ROUTER_AGENT_PORT}"' in agents["router-agent"], \
        "the router-agent must listen where the healthcheck knocks"
    assert f'"--port", "{addresses.STANDBY_AGENT_PORT}"' in agents["server2-agent"], \
        "server2-agent must listen where the router forwards and the healthcheck knocks"
    assert '"--port"' not in agents["server-agent"] and '"--port"' not in agents["client-agent"]  # AGENT_PORT


def test_compose_puts_the_server_behind_the_router() -> None:
    services = _services(COMPOSE.read_text())
    server, router = services[addresses.SERVER_HOST], services[addresses.ROUTER_HOST]
    # "server" on the lab network is the router; the server itself is only on the backend.
    assert re.search(r"^      lab:\n        aliases: \[server(, server2)?\]", router, re.M), router
    assert re.search(r"^      backend:\n        aliases: \[backend-server\]", server, re.M), server
    assert "lab" not in re.search(r"^    networks:(.*?)^    \S", server, re.M | re.S).group(1).replace("backend", "")
    assert f'"--route-to", "{addresses.BACKEND_SERVER_HOST}"' in services["router-agent"]


def test_compose_puts_the_standby_behind_the_router_on_ports_of_its_own() -> None:
    services = _services(COMPOSE.read_text())
    router, standby = services[addresses.ROUTER_HOST], services[addresses.STANDBY_HOST]
    assert re.search(rf"^      lab:\n        aliases: \[{addresses.SERVER_HOST}, {addresses.STANDBY_HOST}\]", router, re.M)
    assert re.search(rf"^      backend:\n        aliases: \[{addresses.BACKEND_STANDBY_HOST}\]", standby, re.M), standby
    assert "lab:" not in standby
    forwarded = {addresses.STANDBY_PORT, addresses.STANDBY_CONTROL_PORT, addresses.STANDBY_AGENT_PORT}
    also = re.search(rf'"--also", "{addresses.BACKEND_STANDBY_HOST}=([\d,]+)"', services["router-agent"])
    assert also and {int(p) for p in also.group(1).split(",")} == forwarded
    from lab.inlab.agent.router import FORWARDED_PORTS
    assert not forwarded & set(FORWARDED_PORTS), "the standby's ports would reach the first server"
    assert (f'"--port={addresses.STANDBY_PORT}"' in standby
            and f'"--control-port={addresses.STANDBY_CONTROL_PORT}"' in standby), standby


def test_the_failover_pair_follows_one_delivery_log() -> None:
    services = _services(COMPOSE.read_text())
    server, standby = services[addresses.SERVER_HOST], services[addresses.STANDBY_HOST]
    threaded = re.split(r"^\s*- --impl=", server, flags=re.M)[1].split("- --impl=")[0]
    assert "- --state-dir=/var/lib/lab/shared" in threaded and "- --shared-log" in threaded, threaded
    assert '"--state-dir=/var/lib/lab/shared", "--shared-log"' in standby
    for block in (server, standby):
        assert re.search(r"^    volumes:\n      - deliveries:/var/lib/lab/shared$", block, re.M), block
    assert re.search(r"^volumes:\n(?:  #.*\n)*  deliveries:\n    driver_opts: \{type: tmpfs", COMPOSE.read_text(), re.M)


def test_compose_publishes_the_toxiproxy_api_port() -> None:
    toxiproxy = _services(COMPOSE.read_text())[addresses.TOXIPROXY_HOST]
    published = re.findall(r'^\s*- "127\.0\.0\.1:\$\{LAB_API_PORT:-\}:(\d+)"\s*$', toxiproxy, re.M)
    assert [int(p) for p in published] == [addresses.TOXIPROXY_API_PORT]
    assert addresses.TOXIPROXY_API == f"http://{addresses.TOXIPROXY_HOST}:{addresses.TOXIPROXY_API_PORT}"


def test_toxiproxy_fronts_each_server_on_the_same_port() -> None:
    proxies = {p["name"]: p for p in json.loads(TOXIPROXY_JSON.read_text())}
    assert set(proxies) == set(addresses.SERVER_PORTS)
    for name, port in addresses.SERVER_PORTS.items():
        assert proxies[name]["listen"] == f"0.0.0.0:{port}"
        assert proxies[name]["upstream"] == f"{addresses.SERVER_HOST}:{port}"


def test_the_default_server_is_one_of_the_servers() -> None:
    assert addresses.DEFAULT_PORT == addresses.SERVER_PORTS[addresses.DEFAULT_SERVER]
    assert addresses.DEFAULT_CONTROL_PORT == addresses.CONTROL_PORTS[addresses.DEFAULT_SERVER]
    assert set(addresses.CONTROL_PORTS) == set(addresses.SERVER_PORTS)


def test_compose_runs_the_sandbox_as_the_uid_the_client_agent_guards() -> None:
    services = _services(COMPOSE.read_text())
    sandbox, guard = services["sandbox"], services["client-agent"]
    assert re.findall(r'^    user: "(\d+):(\d+)"$', sandbox, re.M) == [(str(addresses.SANDBOX_UID),) * 2]
    assert f'"--sandbox-uid", "{addresses.SANDBOX_UID}"' in guard
    assert "--sandbox-uid" not in services["server-agent"]
    listen = re.findall(r'"--listen", "([\d.]+):(\d+)"', sandbox)
    assert listen == [(addresses.DRIVER_HOST, str(addresses.DRIVER_PORT))]
    assert 'network_mode: "service:client"' in sandbox


def test_compose_gives_the_client_and_toxiproxy_the_disjoint_port_ranges_the_evidence_relies_on() -> None:
    services = _services(COMPOSE.read_text())
    for name, (low, high) in ((addresses.TOXIPROXY_HOST, addresses.TOXIPROXY_PORT_RANGE),
                              ("client", addresses.CLIENT_PORT_RANGE)):
        assert f'net.ipv4.ip_local_port_range: "{low} {high}"' in services[name], name
    (a, b), (c, d) = sorted((addresses.CLIENT_PORT_RANGE, addresses.TOXIPROXY_PORT_RANGE))
    assert b < c, "the ranges overlap: behind the router's NAT a port would no longer say who opened it"


def test_the_hosts_list_of_services_is_compose_yamls() -> None:
    from lab.host.topology import SERVICES

    services = _services(COMPOSE.read_text())
    started = {name for name, block in services.items() if "profiles:" not in block}
    assert started == set(SERVICES)
