# Packet loss: the server's namespace drops a random share of the packets to and from the
# port (iptables statistic match). TCP hides it: the sender retransmits what was not
# ACKed, so data arrives intact and in order, only later.
from __future__ import annotations

from typing import Any

from lab.inlab.faults import register
from lab.inlab.faults._iptables import IptablesFault


@register
class Loss(IptablesFault):
    name = "loss"
    rule = {"direction": "both", "action": "drop"}

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        probability = params.get("probability", 0.1)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability < 1:
            raise ValueError(f"parameter 'probability' must be a number between 0 and 1 (exclusive); "
                             f"got {probability!r}")
        self.probability = float(probability)

    def block_args(self) -> dict[str, Any]:
        return {**self.rule, "probability": self.probability}
