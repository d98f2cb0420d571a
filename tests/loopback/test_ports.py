"""Claiming ports for real on 127.0.0.1, with a small synthetic range (never the host's sysctl).

What the exhaust-ports fault relies on, checked on this kernel: :func:`claim` binds and
listens on every port it is given (falling back to 127.0.0.2 when 127.0.0.1 is taken), the
kernel's table shows them as LISTEN rows, a holder process releases them all and says how
many; an exhaustion whose range is not the kernel's is *not* exhausted and says so, leaving
nothing behind. In a scratch network namespace (root and unshare only), the whole effect:
connect() to the target fails with EADDRNOTAVAIL while another destination still works.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from lab.inlab import tcptable
from lab.inlab.agent import ports


def free_block(n: int) -> list[int]:
    """``n`` consecutive ports below the ephemeral range that nothing on this host holds now."""
    for start in range(21000, 30000, n):
        block = list(range(start, start + n))
        rows = {r.local[1] for r in tcptable.read()}
        if rows.isdisjoint(block):
            return block
    pytest.skip("no free block of ports")


def listening(block: list[int]) -> set[int]:
    return {r.local[1] for r in tcptable.read() if r.state == tcptable.LISTEN and r.local[1] in block}


def test_claim_binds_and_listens_on_every_port_and_closes_them() -> None:
    block = free_block(40)
    taken = socket.socket()
    taken.bind(("127.0.0.1", block[5]))     # someone else's socket on 127.0.0.1: the claim moves to 127.0.0.2
    try:
        held = ports.claim(block, time.monotonic() + 5.0)
        try:
            assert len(held.socks) == 40 and held.unclaimed == {} and not held.timed_out
            assert held.by_address == {"127.0.0.1": 39, "127.0.0.2": 1}
            assert listening(block) == set(block)
        finally:
            assert held.close() == 40
        assert listening(block) == set()
    finally:
        taken.close()


def test_claim_stops_at_its_deadline() -> None:
    held = ports.claim(free_block(10), time.monotonic() - 1.0)
    assert held.timed_out and held.socks == []


def test_a_port_no_address_takes_is_noted_with_its_errno() -> None:
    block = free_block(4)
    wildcard = socket.socket()
    wildcard.bind(("0.0.0.0", block[2]))    # conflicts with every address
    try:
        held = ports.claim(block, time.monotonic() + 5.0)
        held.close()
        assert held.unclaimed == {block[2]: "EADDRINUSE"}
    finally:
        wildcard.close()


def test_a_holder_process_claims_reports_and_releases() -> None:
    block = free_block(50)
    holder = ports.Holder(block, 5.0)
    try:
        result = holder.wait_claim(10.0)
        assert result["claimed"] == 50 and result["unclaimed"] == {} and result["pid"] == holder.pid
        assert result["elapsed_s"] < 5.0
        assert listening(block) == set(block)
    finally:
        released = holder.release(5.0)
    assert released == 50 and holder.proc.returncode == 0
    assert listening(block) == set()


def test_an_exhaustion_whose_range_is_not_the_kernels_is_not_exhausted_and_leaves_nothing() -> None:
    # connect() picks from the kernel's own range, so claiming a synthetic one cannot exhaust the
    # target: the exhaustion must notice (connect() keeps succeeding), say so, and close everything.
    block = free_block(20)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    target = ("127.0.0.1", server.getsockname()[1])
    ex = ports.Exhaustion()
    with pytest.raises(ports.PortsError, match="connect\\(\\) still succeeds: the destination is not exhausted"):
        ex.start(target, 2, 5.0, port_range=(block[0], block[-1]))
    assert not ex.active and listening(block) == set()
    server.close()


SCRATCH = textwrap.dedent("""
    import errno, json, socket, sys
    from lab.inlab.agent import ports
    open("/proc/sys/net/ipv4/ip_local_port_range", "w").write("40000 40063")
    target = socket.socket(); target.bind(("127.0.0.9", 7000)); target.listen(64)
    other = socket.socket(); other.bind(("127.0.0.9", 7001)); other.listen(64)
    ex = ports.Exhaustion()
    # (The agent refuses a loopback target; the scratch namespace has only loopback.)
    reply = ex.start(("127.0.0.9", 7000), 4, 10.0)
    probe = socket.socket()
    try:
        probe.connect(("127.0.0.9", 7000)); got = None
    except OSError as exc:
        got = errno.errorcode[exc.errno]
    elsewhere = socket.socket(); elsewhere.connect(("127.0.0.9", 7001))
    released = ex.release()
    print(json.dumps({"reply": reply, "probe": got, "elsewhere": elsewhere.getsockname()[1], "released": released}))
""")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_in_a_scratch_namespace_the_target_is_exhausted_and_other_destinations_are_not() -> None:
    import json
    import os

    proc = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"', sys.executable, SCRATCH],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    if proc.returncode != 0 and ("Operation not permitted" in proc.stderr or "unshare failed" in proc.stderr):
        pytest.skip(f"cannot make a network namespace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    reply = out["reply"]
    assert reply["range"] == [40000, 40063] and reply["claimed"] == 60 and reply["spare"] == [40063, 40062, 40061, 40060]
    assert sorted(port for _, port in reply["connections"]) == [40060, 40061, 40062, 40063]
    assert reply["then"] == "EADDRNOTAVAIL" and out["probe"] == "EADDRNOTAVAIL"
    assert 40060 <= out["elsewhere"] <= 40063      # a port connect() handed out carries another 4-tuple
    assert out["released"] == {"listeners": 60, "connections": 4, "holders": 1, "elapsed_s": out["released"]["elapsed_s"]}
