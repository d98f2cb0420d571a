"""The sandbox for real: graded code confined by the client-agent's rules, held to its limits, and ended.

Each test opens a :class:`~lab.host.sandbox.Sandbox` on the session's lab (run this file with
``LAB_TEST_PROJECT=<name>`` to choose the compose project). The program in it is not the
adapter but a small stand-in, :data:`PROGRAM`: an executable that answers JSON lines, each a
snippet of Python to run *as the submission* (uid 10003, a launcher child), so every check
below is made from where graded code stands. The judge's side, :data:`JUDGE`, runs in the
client container as the in-lab runner would (uid 10001) and dials the launcher on
127.0.0.1:7900.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.addresses import AGENT_PORT, CONTROL_PORTS, DRIVER_PORT, SANDBOX_UID, SERVER_HOST, TOXIPROXY_API_PORT, \
    TOXIPROXY_HOST
from lab.host.sandbox import Sandbox
from lab.host.topology import Lab, leftovers, sweep

pytestmark = pytest.mark.timeout(240)

CONNECT_TIMEOUT = 2.0
MIB = 1024 * 1024

# The submission's stand-in: one JSON line in ({"code": "..."}), the snippet's `result` out.
PROGRAM = r'''#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    ns = {}
    try:
        exec(json.loads(line)["code"], ns)
        reply = {"ok": True, "result": ns.get("result")}
    except BaseException as exc:
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
'''

# The judge: dial the launcher once, send each snippet, print the replies as one JSON list.
JUDGE = r'''
import json, socket, sys
snippets, reply_timeout = json.load(sys.stdin), float(sys.argv[1])
replies = []
with socket.create_connection(("127.0.0.1", %d), timeout=5) as sock:
    sock.settimeout(reply_timeout)
    stream = sock.makefile("rwb")
    for code in snippets:
        stream.write(json.dumps({"code": code}).encode() + b"\n")
        stream.flush()
        replies.append(json.loads(stream.readline()))
print(json.dumps(replies))
''' % DRIVER_PORT

# A connect from the submission's side: "connected", "timeout" (no answer at all) or the error.
PROBE = '''
import socket
try:
    address = socket.gethostbyname({host!r})
except OSError as exc:
    result = "resolve: " + type(exc).__name__
else:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.settimeout({timeout})
    try:
        sock.connect((address, {port}))
        result = "connected"
    except TimeoutError:
        result = "timeout"
    except OSError as exc:
        result = type(exc).__name__
    finally:
        sock.close()
'''

AGENT_CALL = r'''
import json, sys
from lab.inlab.agent.client import AgentClient
method, args = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps(getattr(AgentClient("127.0.0.1", timeout=5.0), method)(*args)))
'''


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sandbox") / "probe.py"
    path.write_text(PROGRAM)
    return path


@pytest.fixture
def sandbox_lab(lab: Lab) -> Iterator[Lab]:
    lab.wait_healthy(timeout=60)
    yield lab
    agent(lab, "reset")  # no allowed target outlives a test


def judge(lab: Lab, *snippets: str, reply_timeout: float = 15.0) -> list[Any]:
    res = lab.exec("client", ["python3", "-c", JUDGE, str(reply_timeout)], stdin=json.dumps(snippets).encode(),
                   timeout=30 + reply_timeout * len(snippets))
    assert res.returncode == 0, res.stderr[-2000:]
    replies = json.loads(res.stdout)
    assert all(r["ok"] for r in replies), replies
    return [r["result"] for r in replies]


def agent(lab: Lab, method: str, *args: Any) -> Any:
    res = lab.exec("client", ["python3", "-c", AGENT_CALL, method, json.dumps(args)], timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def probe(host: str, port: int) -> str:
    return PROBE.format(host=host, port=port, timeout=CONNECT_TIMEOUT)


def client_agent_rules(lab: Lab) -> str:
    res = lab.exec("client-agent", ["iptables", "-w", "5", "-L", "LAB-SANDBOX", "-v", "-x", "-n"], timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def dropped(lab: Lab) -> int:
    """Packets the final DROP rule of LAB-SANDBOX has stopped so far."""
    last = [line for line in client_agent_rules(lab).splitlines() if line.split()[2:3] == ["DROP"]]
    assert len(last) == 1, last
    return int(last[0].split()[0])


def sandboxes(lab: Lab) -> list[str]:
    res = lab.runner.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter",
                          f"label=com.docker.compose.project={lab.project}",
                          "--filter", "label=com.docker.compose.service=sandbox"], timeout=30)
    assert res.ok, res.stderr
    return res.stdout.split()


# 1. The network: nothing but the driver channel, DNS and what the judge allows ---------------------

FORBIDDEN = [(TOXIPROXY_HOST, TOXIPROXY_API_PORT), (SERVER_HOST, AGENT_PORT), ("127.0.0.1", AGENT_PORT),
             (SERVER_HOST, CONTROL_PORTS["threaded"]), (SERVER_HOST, CONTROL_PORTS["selectors"])]


def test_graded_code_reaches_only_what_the_judge_allows(sandbox_lab: Lab, program: Path) -> None:
    lab = sandbox_lab
    with Sandbox(lab, program, "executable") as box:
        who = judge(lab, "import os; result = [os.getuid(), os.getgid()]")
        assert who == [[SANDBOX_UID, SANDBOX_UID]]

        # No answer at all from the lab's control planes: a timeout, never a refusal.
        assert judge(lab, *(probe(h, p) for h, p in FORBIDDEN)) == ["timeout"] * len(FORBIDDEN)
        # The server itself only once allowed, and no longer after a reset.
        assert judge(lab, probe(SERVER_HOST, 7000)) == ["timeout"]
        server_ip = judge(lab, f"import socket; result = socket.gethostbyname({SERVER_HOST!r})")[0]
        reply = agent(lab, "sandbox_allow", [[server_ip, 7000]])
        assert reply["targets"] == [[server_ip, 7000]]
        assert f"-A LAB-SANDBOX -d {server_ip}/32 -p tcp -m tcp --dport 7000 -j ACCEPT" in reply["rules"]
        assert reply["ipv6"] == "dropped"
        assert judge(lab, probe(SERVER_HOST, 7000), probe(SERVER_HOST, 7100)) == ["connected", "timeout"]
        assert judge(lab, *(probe(h, p) for h, p in FORBIDDEN)) == ["timeout"] * len(FORBIDDEN)

        agent(lab, "reset")
        assert judge(lab, probe(SERVER_HOST, 7000)) == ["timeout"]
        assert "sandbox:" in box.impl


def test_ipv6_is_off_in_the_namespace_and_dropped_for_the_sandbox_anyway(sandbox_lab: Lab, program: Path) -> None:
    # Compose's networks have no IPv6, so Docker turns it off in the namespace (not even ::1); the
    # client-agent's ip6tables DROP is there for the day someone enables it.
    code = ("import errno, socket\ns = socket.socket(socket.AF_INET6); s.settimeout(%g)\n"
            "try:\n    s.connect(('::1', %d)); outcome = 'connected'\n"
            "except TimeoutError:\n    outcome = 'timeout'\n"
            "except OSError as exc:\n    outcome = errno.errorcode[exc.errno]\n"
            "result = [open('/proc/sys/net/ipv6/conf/all/disable_ipv6').read().strip(), outcome]\n"
            ) % (CONNECT_TIMEOUT, AGENT_PORT)
    with Sandbox(sandbox_lab, program, "executable"):
        assert judge(sandbox_lab, code) == [["1", "EADDRNOTAVAIL"]]
    reply = agent(sandbox_lab, "sandbox_allow", [])
    assert (reply["rules6"], reply["ipv6"]) == (["-A LAB-SANDBOX -j DROP"], "dropped")


# 2. The limits ------------------------------------------------------------------------------------

MEMORY = '''
import os, subprocess, sys
v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
limit = int(open(v2 if os.path.exists(v2) else v1).read())
child = subprocess.run([sys.executable, "-c", "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"],
                       capture_output=True, timeout=60)
result = [limit, child.returncode, "MemoryError" in child.stderr.decode()]
'''

PIDS = '''
import os, signal
before = len([p for p in os.listdir("/proc") if p.isdigit()])
kids, error = [], None
try:
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
except OSError as exc:
    error = [type(exc).__name__, exc.errno]
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
result = [before, len(kids), error]
'''

TMP = '''
import errno, os
written, error = 0, None
fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
chunk = b"x" * (1024 * 1024)
try:
    while written < 100 * 1024 * 1024:
        written += os.write(fd, chunk)
except OSError as exc:
    error = exc.errno
finally:
    os.close(fd)
    os.unlink("/tmp/fill")
result = [written, error]
'''

FILES = '''
import os, resource
fds, error = [], None
try:
    for _ in range(1000):
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as exc:
    error = exc.errno
top = max(fds)
for fd in fds:
    os.close(fd)
result = [list(resource.getrlimit(resource.RLIMIT_NOFILE)), top, error]
'''

PROCESS = '''
import os, resource
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
try:
    open("/opt/lab/planted", "w")
    ro = None
except OSError as exc:
    ro = exc.errno
result = {"cpu": list(resource.getrlimit(resource.RLIMIT_CPU)), "no_new_privs": status["NoNewPrivs"].strip(),
          "cap_eff": status["CapEff"].strip(), "read_only_root": ro, "session_leader": os.getsid(0) == os.getpid()}
'''


def test_the_sandbox_holds_graded_code_to_its_limits(sandbox_lab: Lab, program: Path) -> None:
    with Sandbox(sandbox_lab, program, "executable"):
        memory, pids, tmp, files, process = judge(sandbox_lab, MEMORY, PIDS, TMP, FILES, PROCESS, reply_timeout=60)
    limit, returncode, memory_error = memory
    assert limit == 256 * MIB
    assert returncode == -9 or (returncode == 1 and memory_error), memory   # OOM-killed, or refused
    before, forked, error = pids
    assert error == ["BlockingIOError", errno.EAGAIN]
    assert before + forked == 64                          # the launcher, this program, the snippet's own kids
    assert tmp == [64 * MIB, errno.ENOSPC]
    assert files == [[256, 256], 255, errno.EMFILE]
    assert process == {"cpu": [300, 310], "no_new_privs": "1", "cap_eff": "0000000000000000",
                       "read_only_root": errno.EROFS, "session_leader": True}


# 3. The end: nothing survives the context, and the next sandbox starts clean ----------------------

DAEMON = '''
import os, socket, time
read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(read)
        os.write(write, str(os.getpid()).encode())
        os.close(write)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        while True:  # the marker: a SYN every 0.1 s to a port no one may reach, counted by the DROP rule
            s = socket.socket()
            s.settimeout(0.05)
            try:
                s.connect(("%s", 7999))
            except OSError:
                pass
            s.close()
            time.sleep(0.05)
    os._exit(0)
os.close(write)
os.wait()
daemon = int(os.read(read, 32))
stat = open(f"/proc/{daemon}/stat").read().rpartition(")")[2].split()
result = {"daemon": daemon, "ppid": int(stat[1]), "left_my_session": int(stat[3]) != os.getsid(0),
          "mine": os.getpid()}
''' % SERVER_HOST


def test_a_setsid_daemon_dies_with_the_sandbox_and_the_next_one_starts_clean(sandbox_lab: Lab,
                                                                             program: Path) -> None:
    lab = sandbox_lab
    started = time.monotonic()
    with Sandbox(lab, program, "executable") as box:
        entered = time.monotonic() - started
        assert sandboxes(lab) == [box.container]
        (daemon,) = judge(lab, DAEMON)
        # Orphaned to the launcher (PID 1), in another session: out of the launcher's reach.
        assert (daemon["ppid"], daemon["left_my_session"]) == (1, True)
        first = dropped(lab)
        time.sleep(1.0)
        assert dropped(lab) > first  # it is alive, and its packets go nowhere
        exiting = time.monotonic()
    left = time.monotonic() - exiting
    assert sandboxes(lab) == []
    assert re.search(rf"launcher: child {daemon['mine']} exited with 0", box.logs()), box.logs()
    after = dropped(lab)
    time.sleep(1.5)
    assert dropped(lab) == after  # the marker stopped: the daemon is gone with its container

    with Sandbox(lab, program, "executable") as second:
        assert sandboxes(lab) == [second.container]
        listing = judge(lab, "import os; result = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())")[0]
        # A fresh pid namespace: the launcher (1) and this program only, nothing of the first sandbox.
        assert len(listing) == 2 and listing[0] == 1, listing
        assert dropped(lab) == after
    assert sandboxes(lab) == []
    print(f"sandbox enter {entered:.2f} s, exit {left:.2f} s")


@pytest.mark.slow
def test_lab_down_removes_a_sandbox_left_behind(lab: Lab, program: Path) -> None:
    """A crash between enter and exit leaves a container running; ``lab down`` removes it too.

    On a lab of its own (this session's project name plus "-down"): taking it down is the test.
    """
    other = Lab(lab.repo, project=f"{lab.project}-down")
    box: Sandbox | None = None
    try:
        other.up()
        box = Sandbox(other, program, "executable")
        box.__enter__()  # and never __exit__: what a killed host process leaves
        assert sandboxes(other) == [box.container]
        other.down()
        assert sandboxes(other) == []
        assert leftovers(other.runner, other.project) == {"containers": [], "networks": [], "volumes": []}
    finally:
        sweep(other.runner, other.project)
        if box is not None and box.folder is not None:
            shutil.rmtree(box.folder, ignore_errors=True)
