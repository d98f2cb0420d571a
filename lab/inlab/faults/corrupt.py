# Corruption on the path: the router flips one bit of one payload byte in every Nth data segment
# of the server's port going one way (its NFQUEUE handler returns the changed packet with its
# verdict). With mode "bad-checksum" the TCP checksum is left as it was, so it is wrong: the
# receiver's kernel discards the segment (InCsumErrors), and the sender's retransmission, which
# the router leaves alone, arrives intact. With mode "recompute" the router fixes the checksum,
# as a broken middlebox or NIC offload does: the corrupt byte is delivered to the application.
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from lab.inlab.faults import param, register
from lab.inlab.faults._path import MangleFault, PathParams


@dataclasses.dataclass(frozen=True)
class CorruptParams(PathParams):
    mode: Literal["bad-checksum", "recompute"] = "bad-checksum"
    every: int = param(1, ge=1, le=1000)    # one data segment in this many is corrupted
    limit: int = param(1, ge=1, le=1000)    # at most this many segments per connection
    offset: int = param(20, ge=0, le=65535)  # the payload byte flipped (past the lab's 13-byte header)


@register
class Corrupt(MangleFault):
    name = "corrupt"
    kind = "corrupt"
    params: CorruptParams

    def fields(self) -> dict[str, Any]:
        p = self.params
        return {"mode": p.mode, "every": p.every, "limit": p.limit, "offset": p.offset, "mask": 0x20,
                "per_connection": True}
