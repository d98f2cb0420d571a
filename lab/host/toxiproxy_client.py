"""toxiproxy-python's own client, aimed at one lab (host side only).

The lab itself talks to Toxiproxy through :class:`lab.inlab.toxics.Toxiproxy` (standard library,
so it also works inside the containers); this hands out the upstream client for the host, where
the test fixtures use it to reset the proxies after every test::

    python_client(lab.toxiproxy_url()).reset()
"""

from __future__ import annotations

import urllib.parse
from typing import Any


def python_client(base_url: str) -> Any:
    """toxiproxy-python's ``Toxiproxy``, aimed at the Toxiproxy API at ``base_url``.

    Its address is process-wide (class attributes), so this points *every*
    toxiproxy-python object in the process at this one lab.
    """
    from toxiproxy import Toxiproxy as PythonToxiproxy
    from toxiproxy.api import APIConsumer

    parsed = urllib.parse.urlsplit(base_url)
    APIConsumer.host, APIConsumer.port = parsed.hostname, parsed.port
    return PythonToxiproxy()
