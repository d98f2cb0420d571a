# Toxiproxy slicer toxic. The proxy cuts the stream into pieces of about average_size bytes (± size_variation)
# and waits delay microseconds between them. Every byte arrives, in order, but in many small
# segments: one recv returns part of a message.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class Slicer(Toxic):
    name = "slicer"
    kind = "slicer"
