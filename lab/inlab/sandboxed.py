"""The judge's part for code that runs in the sandbox: what it may reach, and what really got through.

A graded program runs in its own container (see docs/grading.md, "Where your code runs")
and is driven over the driver protocol by :class:`lab.inlab.remote.RemoteSubject`. Two
things about it cannot be learnt from what it says, so the judge asks the kernel and the
server instead:

- **reach**: the client-agent's kernel rules let the sandbox's uid reach nothing at all
  but the driver channel and DNS; :func:`allow` opens exactly the (address, port) pairs this
  run hands the program, and :func:`close_all` shuts them again;
- **delivery**: every message body the judge handed the program carries 16 unique bytes,
  so the server's record of what it received (``{"cmd": "delivered"}``, counted by digest)
  tells which replies were made up, which messages arrived twice, and which never arrived;
  a protocol rejection whose first bytes carry this subject's nonce is a protocol mismatch
  (``{"cmd": "rejections"}``).

:func:`verify` turns that into the facts the grader's verdict rules read
(:mod:`lab.grading.verdicts`): ``fabricated``, ``duplicated``, ``lost``, ``rejected``,
``bytes_sent``. It runs after the lab is reset, because a frozen server answers no query.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

DIGESTS_PER_QUERY = 4096
HEAD_BYTES = 32


def resolve(host: str) -> str:
    """The IPv4 address of a lab host name (the kernel rules match addresses, not names)."""
    return socket.gethostbyname(host)


def allow(client_agent: Any, targets: Iterable[tuple[str, int]]) -> list[list[Any]]:
    """Let the sandbox reach exactly these (host, port) pairs, replacing what it could reach before."""
    pairs = sorted({(resolve(host), int(port)) for host, port in targets})
    client_agent.sandbox_allow([list(p) for p in pairs])
    return [list(p) for p in pairs]


def close_all(client_agent: Any) -> None:
    client_agent.sandbox_allow([])


ServerQuery = Callable[..., dict[str, Any]]


def delivered_counts(query: ServerQuery, digests: Sequence[str]) -> dict[str, int]:
    """How many times the server received each digest (0: never), asked in bounded batches."""
    counts: dict[str, int] = {}
    unique = sorted(set(digests))
    for start in range(0, len(unique), DIGESTS_PER_QUERY):
        batch = unique[start:start + DIGESTS_PER_QUERY]
        reply = query(cmd="delivered", digests=batch)
        counts.update({d: int(n) for d, n in reply.get("counts", {}).items()})
    return counts


def mismatch(query: ServerQuery, nonce_hex: str, first_frame: bytes | None, since: float) -> dict[str, Any] | None:
    """The server's rejection of this subject's bytes (its nonce is among the first received), if any."""
    reply = query(cmd="rejections", since=since)
    for rej in reply.get("rejections", []):
        if nonce_hex and nonce_hex in str(rej.get("head", "")):
            found = {k: rej.get(k) for k in ("head", "error", "answer", "received")}
            if first_frame is not None:
                found["expected_head"] = first_frame[:HEAD_BYTES].hex()
            return found
    return None


def verify(subject: Any, query: ServerQuery, *, completed: bool, since: float) -> dict[str, Any]:
    """Facts about one sandboxed subject's messages, from the server's own record.

    fabricated  replies the program returned as intact that the server never received
    duplicated  messages the server received more than once (exactly-once broken)
    lost        messages whose send the program reported done but the server never received,
                counted only when the program completed without reporting any failure
    rejected    the server's rejection of what the program sent, when there was one
    """
    messages = list(getattr(subject, "messages", []))
    facts: dict[str, Any] = {"bytes_sent": int(getattr(subject, "bytes_sent", 0)), "messages": len(messages)}
    if messages:
        counts = delivered_counts(query, [m.digest for m in messages])
        facts["fabricated"] = sum(1 for m in messages if m.reply == "intact" and counts.get(m.digest, 0) == 0)
        facts["duplicated"] = sum(1 for m in messages if counts.get(m.digest, 0) > 1)
        facts["lost"] = (sum(1 for m in messages if m.sent and counts.get(m.digest, 0) == 0)
                         if completed else 0)
        facts["delivered"] = sum(1 for m in messages if counts.get(m.digest, 0) > 0)
    nonce = getattr(subject, "nonce", b"") or b""
    rejected = mismatch(query, nonce.hex(), getattr(subject, "first_frame", None), since)
    if rejected is not None:
        facts["rejected"] = rejected
    return facts


__all__ = ["allow", "close_all", "resolve", "delivered_counts", "mismatch", "verify", "DIGESTS_PER_QUERY"]
