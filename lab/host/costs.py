"""Each scenario's expected seconds in a lab, as the host sees one ``lab run`` of it: the weights of
the longest-first schedule (lab.host.pool) and of the stable shard split (lab.host.shards).

Measured on this project's 2-CPU machines with ``lab run --all --jobs 1`` (the time between two
scenarios' reports, so it includes each run's ``docker compose exec`` and the lab's reset). The
figures only order the work and balance the shards: a stale one costs some balance, never a
wrong verdict. A scenario missing here is weighed as the median (a unit test lists the missing).
"""

SECONDS: dict[str, float] = {
    "backlog-full": 8.5,
    "backpressure": 10.7,
    "bandwidth": 8.0,
    "black-hole": 9.0,
    "child-crash": 0.8,
    "clean-close": 0.9,
    "clock-jump": 15.2,
    "connect-black-hole": 8.0,
    "corrupt-bad-checksum": 1.2,
    "corrupt-recomputed": 1.1,
    "dns-refused": 0.5,
    "dns-silent": 10.6,
    "failover": 12.4,
    "firewall-idle-expiry": 12.1,
    "firewall-idle-expiry-no-keepalive": 14.0,
    "fragmentation": 1.4,
    "frozen-process": 8.7,
    "half-close": 0.7,
    "hop-jitter": 1.7,
    "host-vanishes": 9.0,
    "icmp-unreachable": 3.1,
    "latency": 3.8,
    "mid-message-cut": 0.7,
    "multiplexed-peer-death": 0.5,
    "nagle-stall": 2.1,
    "out-of-descriptors": 5.9,
    "packet-duplication": 1.0,
    "packet-loss": 2.7,
    "packet-reordering": 1.0,
    "partition-to-client": 9.2,
    "partition-to-server": 9.3,
    "peer-reboot": 8.8,
    "pmtu-black-hole": 10.0,
    "pmtu-clamped": 1.0,
    "port-exhaustion": 1.2,
    "process-crash": 1.6,
    "refused": 0.8,
    "reset": 1.0,
    "restart-without-reuseaddr": 1.2,
    "server-restart": 2.1,
    "slow-close": 2.0,
    "write-after-reset": 1.1,
}
