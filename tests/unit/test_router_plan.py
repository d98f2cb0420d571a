"""The router's NAT plan: which link faces which network, and the rules that forward the server's ports."""

from __future__ import annotations

import json

import pytest

from lab.addresses import AGENT_PORT, CONTROL_PORTS, ROUTER_AGENT_PORT, SERVER_PORTS
from lab.inlab.agent import router
from lab.inlab.agent.router import Interface

# What `ip -j -4 addr show` printed in a router container (trimmed to the fields read).
IP_ADDR = json.dumps([
    {"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 40, "ifname": "eth0", "addr_info": [{"family": "inet", "local": "172.30.0.5", "prefixlen": 16}]},
    {"ifindex": 42, "ifname": "eth1", "addr_info": [{"family": "inet", "local": "172.31.0.3", "prefixlen": 16}]},
])


def test_parse_ip_addr_keeps_every_ipv4_address_but_loopback() -> None:
    assert router.parse_ip_addr(IP_ADDR) == [Interface("eth0", "172.30.0.5", 16), Interface("eth1", "172.31.0.3", 16)]


def test_parse_ip_addr_refuses_what_is_not_json() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        router.parse_ip_addr("1: lo: <LOOPBACK>")


def test_the_link_holding_the_server_is_the_backend_either_way_round() -> None:
    links = router.parse_ip_addr(IP_ADDR)
    p = router.plan(links, "172.31.0.2")
    assert (p.lab.name, p.backend.name, p.server) == ("eth0", "eth1", "172.31.0.2")
    q = router.plan(links, "172.30.0.9")
    assert (q.lab.name, q.backend.name) == ("eth1", "eth0")


@pytest.mark.parametrize("links", [
    [Interface("eth0", "172.30.0.5", 16)],                                          # no lab link
    [Interface("eth0", "10.0.0.5", 24), Interface("eth1", "10.1.0.5", 24)],         # server on neither
    [Interface("eth0", "172.30.0.5", 16), Interface("eth1", "10.1.0.5", 24), Interface("eth2", "10.2.0.5", 24)],
])
def test_a_router_needs_exactly_one_link_each_side(links: list[Interface]) -> None:
    with pytest.raises(ValueError, match="one link to the server's network"):
        router.plan(links, "172.30.0.9")


def test_it_forwards_exactly_the_servers_ports_and_not_its_own_agent() -> None:
    assert set(router.FORWARDED_PORTS) == {*SERVER_PORTS.values(), *CONTROL_PORTS.values(), AGENT_PORT}
    assert ROUTER_AGENT_PORT not in router.FORWARDED_PORTS


def test_nat_rules_dnat_on_the_lab_side_and_snat_to_the_backend_address() -> None:
    p = router.plan(router.parse_ip_addr(IP_ADDR), "172.31.0.2", ports=(7000, 7001))
    rules = router.nat_rules(p)
    assert rules[:4] == [["-t", "nat", "-N", "LAB-ROUTER-DNAT"], ["-t", "nat", "-F", "LAB-ROUTER-DNAT"],
                         ["-t", "nat", "-N", "LAB-ROUTER-SNAT"], ["-t", "nat", "-F", "LAB-ROUTER-SNAT"]]
    assert rules[4] == ["-t", "nat", "-A", "LAB-ROUTER-DNAT", "-i", "eth0", "-d", "172.30.0.5", "-p", "tcp",
                        "-m", "multiport", "--dports", "7000,7001", "-j", "DNAT", "--to-destination", "172.31.0.2"]
    assert rules[5] == ["-t", "nat", "-A", "LAB-ROUTER-SNAT", "-o", "eth1", "-d", "172.31.0.2", "-p", "tcp",
                        "-m", "multiport", "--dports", "7000,7001", "-j", "SNAT", "--to-source", "172.31.0.3"]
    assert len(rules) == 6


def test_resolve_retries_until_the_name_appears_then_gives_up_with_the_cause() -> None:
    now = [0.0]
    answers = iter([OSError("no such host"), OSError("no such host"), "172.31.0.2"])

    def lookup(_host: str) -> str:
        a = next(answers)
        if isinstance(a, OSError):
            raise a
        return a

    def sleep(s: float) -> None:
        now[0] += s

    assert router.resolve("backend-server", wait=5, clock=lambda: now[0], sleep=sleep, lookup=lookup) == "172.31.0.2"
    assert now[0] == 1.0

    def never(_host: str) -> str:
        raise OSError("Name or service not known")

    with pytest.raises(OSError, match="did not resolve within 2 s") as info:
        router.resolve("backend-server", wait=2, clock=lambda: now[0], sleep=sleep, lookup=never)
    assert isinstance(info.value.__cause__, OSError)


def test_the_path_counters_sum_the_tagged_rules_of_their_chain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lab.inlab.agent.commands import Completed
    from lab.inlab.agent.service import Agent

    listing = {
        "LAB-PATH-STATE": "       6      312 DROP  tcp  --  *  *  0.0.0.0/0  0.0.0.0/0  /* socket-lab:idle */\n"
                          "       2       80 DROP  tcp  --  *  *  0.0.0.0/0  0.0.0.0/0  /* socket-lab:idle */\n",
        "LAB-PATH-ICMP": "      12      900 DROP  icmp --  *  *  0.0.0.0/0  0.0.0.0/0  /* socket-lab:frag-needed */\n"
                         "       5      200 DROP  icmp --  *  *  0.0.0.0/0  0.0.0.0/0  /* socket-lab:other */\n",
    }

    class Runner:
        def run(self, argv, timeout=10.0):  # type: ignore[no-untyped-def]
            return Completed(0, listing.get(argv[argv.index("-L") + 1], ""), "")

    agent = Agent(Runner(), proc_root=tmp_path, capture_dir=tmp_path)  # type: ignore[arg-type]
    assert (agent.idle_drops(), agent.frag_needed_dropped()) == (8, 12)


def test_a_standby_host_gets_the_same_two_rewrites_on_its_own_ports() -> None:
    standby = router.Forward("172.31.0.4", (7400, 7401))
    p = router.plan(router.parse_ip_addr(IP_ADDR), "172.31.0.2", ports=(7000, 7001), others=[standby])
    rules = router.nat_rules(p)
    assert rules[6:] == [
        ["-t", "nat", "-A", "LAB-ROUTER-DNAT", "-i", "eth0", "-d", "172.30.0.5", "-p", "tcp",
         "-m", "multiport", "--dports", "7400,7401", "-j", "DNAT", "--to-destination", "172.31.0.4"],
        ["-t", "nat", "-A", "LAB-ROUTER-SNAT", "-o", "eth1", "-d", "172.31.0.4", "-p", "tcp",
         "-m", "multiport", "--dports", "7400,7401", "-j", "SNAT", "--to-source", "172.31.0.3"]]
    # The path's faults act on p.server and its ports alone: the standby is not "the server".
    assert (p.server, p.ports) == ("172.31.0.2", (7000, 7001))
    assert p.as_dict()["others"] == [{"server": "172.31.0.4", "ports": [7400, 7401]}]


@pytest.mark.parametrize(("other", "message"), [
    (router.Forward("10.9.0.4", (7400,)), r"a forward to 10.9.0.4 leaves the backend network 172.31.0.0/16"),
    (router.Forward("172.31.0.4", (7001, 7400)), r"a forward to 172.31.0.4 needs ports of its own; got \[7001, 7400\]"),
    (router.Forward("172.31.0.4", ()), r"needs ports of its own; got \[\]"),
])
def test_a_standby_forward_stays_on_the_backend_and_takes_no_port_of_the_servers(other: router.Forward,
                                                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        router.plan(router.parse_ip_addr(IP_ADDR), "172.31.0.2", ports=(7000, 7001), others=[other])


def test_parse_forward_reads_host_and_ports_or_says_what_is_accepted() -> None:
    assert router.parse_forward("backend-server2=7400,7401,9011") == ("backend-server2", (7400, 7401, 9011))
    for bad in ("backend-server2", "=7400", "backend-server2=", "backend-server2=7400,x", "h=0", "h=65536"):
        with pytest.raises(ValueError, match=r"expected HOST=PORT\[,PORT\.\.\.\] with ports 1-65535"):
            router.parse_forward(bad)
