"""The sandbox's firewall in the client's namespace: which packets graded code may send, as iptables rules.

Graded code runs as :data:`lab.addresses.SANDBOX_UID` in a container that shares the client's
network namespace (lab/host/sandbox.py). The client-agent jumps every packet that a socket of
that uid sends (``OUTPUT -m owner --uid-owner UID``) to the chain LAB-SANDBOX, which accepts:

- the launcher's side of the driver channel (``-o lo``, 127.0.0.1, TCP source port
  :data:`~lab.addresses.DRIVER_PORT`): the judge dials in, the launcher answers;
- Docker's embedded DNS (127.0.0.11, any protocol and port: Docker DNATs port 53 to a
  random one before the filter table sees it), so names like "server" resolve;
- exactly the (IPv4 address, TCP port) targets the judge allowed for the current run;

and drops everything else, so a probe gets no answer at all (a timeout, never a refusal that
would tell it something). For IPv6 the chain only drops.

The chain is always rewritten whole, in one ``iptables-restore --noflush`` transaction, so
there is never a moment with the chain empty (an empty chain would fall back to OUTPUT's
ACCEPT policy). The OUTPUT jump goes after LAB-FAULTS (which the agent inserts first), so
the lab's packet faults still reach the graded code's own connections.

This module plans; :class:`lab.inlab.agent.service.Agent` runs iptables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lab.addresses import DRIVER_HOST, DRIVER_PORT
from lab.inlab.agent.requests import Args, BadRequest

CHAIN = "LAB-SANDBOX"
HOOK = "OUTPUT"
DOCKER_DNS = "127.0.0.11"
MAX_TARGETS = 16
FAMILIES = ("iptables", "ip6tables")

Target = tuple[str, int]

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # no leading zeros: "010" is not ambiguous octal
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_ACCEPTED = ('"targets" is a list of at most 16 [address, port] pairs, e.g. [["172.18.0.3", 7000]]: the address '
             "a unicast IPv4 dotted quad other than 0.0.0.0 and 127.0.0.0/8, the port an integer from 1 to 65535")


def parse_targets(op: str, value: Any) -> list[Target]:
    """Validate the ``targets`` field of ``op``; returns the pairs in order, each once."""
    if not isinstance(value, list):
        raise BadRequest(f"{op}: field \"targets\" must be a list; got {value!r}. {_ACCEPTED}")
    if len(value) > MAX_TARGETS:
        raise BadRequest(f"{op}: field \"targets\" has {len(value)} entries, more than {MAX_TARGETS}. {_ACCEPTED}")
    targets: list[Target] = []
    for i, entry in enumerate(value):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise BadRequest(f"{op}: targets[{i}] must be an [address, port] pair; got {entry!r}. {_ACCEPTED}")
        address, port = entry
        if not (isinstance(address, str) and _IPV4_RE.fullmatch(address)):
            raise BadRequest(f"{op}: targets[{i}] address must be an IPv4 dotted quad; got {address!r}. {_ACCEPTED}")
        first = int(address.split(".")[0])
        if address == "0.0.0.0" or first == 127 or first >= 224:
            # Loopback is the client's own namespace: the agent's API and the judge's driver channel.
            raise BadRequest(f"{op}: targets[{i}] address {address} is not accepted (unspecified, loopback, "
                             f"multicast or reserved). {_ACCEPTED}")
        if type(port) is not int or not 1 <= port <= 65535:
            raise BadRequest(f"{op}: targets[{i}] port must be an integer from 1 to 65535; got {port!r}. {_ACCEPTED}")
        if (address, port) not in targets:
            targets.append((address, port))
    return targets


def jump_args(uid: int, verb: str = "-A") -> list[str]:
    """The OUTPUT rule that sends the sandbox uid's packets to LAB-SANDBOX (``-A``, ``-C`` or ``-D``)."""
    return [verb, HOOK, "-m", "owner", "--uid-owner", str(uid), "-j", CHAIN]


def chain_rules(targets: Sequence[Target], *, driver_port: int = DRIVER_PORT) -> list[list[str]]:
    """LAB-SANDBOX's IPv4 rules, in order, each as the arguments after ``-A LAB-SANDBOX``."""
    # -s and -d too, not only --sport: a socket bound to 127.0.0.2:7900 (allowed beside the
    # launcher's 127.0.0.1:7900) must not pass as the driver channel.
    rules = [["-o", "lo", "-s", DRIVER_HOST, "-d", DRIVER_HOST, "-p", "tcp", "--sport", str(driver_port),
              "-j", "ACCEPT"],
             ["-d", DOCKER_DNS, "-j", "ACCEPT"]]
    rules += [["-d", address, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"] for address, port in targets]
    rules.append(["-j", "DROP"])
    return rules


def chain_rules6() -> list[list[str]]:
    """LAB-SANDBOX's IPv6 rules: the lab speaks IPv4 only, so graded code gets nothing over IPv6."""
    return [["-j", "DROP"]]


def restore_text(rules: Sequence[Sequence[str]]) -> str:
    """An ``iptables-restore --noflush`` input that replaces LAB-SANDBOX's rules in one transaction."""
    lines = ["*filter", f"-F {CHAIN}", *(" ".join([f"-A {CHAIN}", *rule]) for rule in rules), "COMMIT"]
    return "\n".join(lines) + "\n"


def listed_rules(listing: str) -> list[str]:
    """The ``-A LAB-SANDBOX ...`` lines of ``iptables -S LAB-SANDBOX`` (without the ``-N`` line)."""
    return [line.strip() for line in listing.splitlines() if line.startswith(f"-A {CHAIN} ")]


def read_targets(args: Args) -> list[Target]:
    """The validated ``targets`` field of a request (required; ``[]`` clears the allowed targets)."""
    # Args has typed readers for scalars only; the list is fetched raw and checked by parse_targets.
    value = args._get("targets", None)  # noqa: SLF001
    if value is None:
        raise BadRequest(f'{args.op}: field "targets" is required. {_ACCEPTED}')
    return parse_targets(args.op, value)
