# Toxiproxy slicer toxic. The proxy cuts the stream into pieces of about average_size bytes (± size_variation)
# and waits delay microseconds between them. Every byte arrives, in order, but in many small
# segments: one recv returns part of a message.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class SlicerParams(ToxicParams):
    average_size: int = param(0, ge=0)    # bytes per piece
    size_variation: int = param(0, ge=0)  # bytes, either way
    delay: int = param(0, ge=0)           # microseconds between pieces


@register
class Slicer(Toxic):
    name = "slicer"
    kind = "slicer"
    params: SlicerParams
