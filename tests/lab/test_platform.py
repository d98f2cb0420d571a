"""The platform holds its promises: isolated network, hardened containers, API on loopback only."""

from __future__ import annotations

import json

import pytest

from lab.host.topology import Lab

APP_SERVICES = {"server", "client", "router", "server2"}
AGENTS = {"server-agent": {"NET_ADMIN", "NET_RAW", "SETGID", "KILL",
                             "SYS_PTRACE", "DAC_READ_SEARCH"},
          "client-agent": {"NET_ADMIN", "NET_RAW", "SETGID"},
          "router-agent": {"NET_ADMIN", "NET_RAW", "SETGID"},
          "server2-agent": {"NET_ADMIN", "NET_RAW", "SETGID"}}
# A UDP connect() picks a route and sends nothing: the kernel's answer alone proves there is
# no way out. 192.0.2.1 is TEST-NET-1 (RFC 5737), never a real host.
_PROBE = """
import errno, json, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("192.0.2.1", 9))
    print(json.dumps({"connected": True}))
except OSError as exc:
    print(json.dumps({"connected": False, "errno": errno.errorcode[exc.errno]}))
"""


@pytest.mark.parametrize("service", ["client", "server", "router", "server2"])
def test_no_way_out_of_the_lab(lab: Lab, service: str) -> None:
    res = lab.exec(service, ["python3", "-c", _PROBE], timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"connected": False, "errno": "ENETUNREACH"}
    routes = lab.exec(service, ["ip", "-4", "route", "show", "default"], timeout=30)
    assert routes.returncode == 0 and routes.stdout.strip() == ""


def test_lab_network_is_internal(lab: Lab, docker_client) -> None:
    nets = docker_client.networks.list(filters={"label": f"com.docker.compose.project={lab.project}"}, greedy=True)
    by_name = {n.attrs["Labels"]["com.docker.compose.network"]: n.attrs for n in nets}
    assert set(by_name) == {"lab", "backend", "control"}
    assert by_name["lab"]["Internal"] is True and by_name["backend"]["Internal"] is True
    assert by_name["control"]["Options"].get("com.docker.network.bridge.enable_ip_masquerade") == "false"
    control_members = {c["Name"].rsplit("-", 2)[-2] for c in by_name["control"]["Containers"].values()}
    assert control_members == {"toxiproxy"}
    # Both server hosts are behind the router: on the backend network only, with the router.
    backend_members = {c["Name"].rsplit("-", 2)[-2] for c in by_name["backend"]["Containers"].values()}
    lab_members = {c["Name"].rsplit("-", 2)[-2] for c in by_name["lab"]["Containers"].values()}
    assert backend_members == {"server", "router", "server2"}
    assert lab_members == {"client", "toxiproxy", "router"}


def _containers(lab: Lab, docker_client) -> dict[str, dict]:
    found = docker_client.containers.list(filters={"label": f"com.docker.compose.project={lab.project}"})
    return {c.labels["com.docker.compose.service"]: c.attrs for c in found}


def test_containers_are_hardened(lab: Lab, docker_client) -> None:
    containers = _containers(lab, docker_client)
    assert set(containers) == {"toxiproxy", "server", "client", "server-agent", "client-agent", "router",
                               "router-agent", "server2", "server2-agent"}
    for service, attrs in containers.items():
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in (host["SecurityOpt"] or []), service
        assert host["ReadonlyRootfs"] is True, service
        assert host["Privileged"] is False, service
        mounts = [m.get("Source", "") for m in attrs["Mounts"]]
        assert not any("docker.sock" in m for m in mounts), (service, mounts)
        assert attrs["Config"]["Labels"].get("org.socket-lab.lab") == "1", service
        user = attrs["Config"]["User"]
        if service in AGENTS:
            # The agents are root by necessity (iptables, ip route) and hold nothing else.
            assert user in ("0:0", "root"), service
            assert {c.removeprefix("CAP_") for c in host["CapAdd"] or []} == AGENTS[service], service
        else:
            assert user and user.split(":")[0] not in ("", "0", "root"), (service, user)
            assert not host["CapAdd"], (service, host["CapAdd"])


def test_api_published_on_loopback_only(lab: Lab, docker_client) -> None:
    containers = _containers(lab, docker_client)
    for service, attrs in containers.items():
        bindings = attrs["HostConfig"]["PortBindings"] or {}
        for port, binds in bindings.items():
            assert service == "toxiproxy" and port == "8474/tcp", (service, port)
            assert all(b["HostIp"] == "127.0.0.1" for b in binds), binds
    published = containers["toxiproxy"]["NetworkSettings"]["Ports"]["8474/tcp"]
    assert published and all(p["HostIp"] == "127.0.0.1" for p in published)
