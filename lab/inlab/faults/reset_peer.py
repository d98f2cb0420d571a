# Toxiproxy reset_peer toxic. On the first data after the toxic exists (and timeout ms later), the proxy closes the
# client's connection with SO_LINGER 0, so the client's kernel receives a real RST. Only
# connections opened after the toxic was added are reset.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class ResetPeerParams(ToxicParams):
    timeout: int = param(0, ge=0)    # ms after the first data


@register
class ResetPeer(Toxic):
    name = "reset-peer"
    kind = "reset_peer"
    params: ResetPeerParams
