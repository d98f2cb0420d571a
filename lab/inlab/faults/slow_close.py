# Toxiproxy slow_close toxic. When one side closes, the proxy waits delay ms before passing the close on. The data is
# all there; the FIN comes late, so a reader that waits for EOF waits that much longer.

from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class SlowCloseParams(ToxicParams):
    delay: int = param(0, ge=0)      # ms before the close is passed on


@register
class SlowClose(Toxic):
    name = "slow-close"
    kind = "slow_close"
    params: SlowCloseParams
