# Toxiproxy slow_close toxic. When one side closes, the proxy waits delay ms before passing the close on. The data is
# all there; the FIN comes late, so a reader that waits for EOF waits that much longer.

from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class SlowClose(Toxic):
    name = "slow-close"
    kind = "slow_close"
