"""The Toxiproxy wrapper against the lab's real Toxiproxy: a refused toxic surfaces the server's own words."""

from __future__ import annotations

import pytest

from lab.host.topology import Lab
from lab.host.toxiproxy_client import python_client
from lab.inlab.toxics import Toxiproxy, ToxicRejected, ToxiproxyError


@pytest.fixture
def api(lab: Lab):  # type: ignore[no-untyped-def]
    client = Toxiproxy(lab.toxiproxy_url())
    client.reset()
    yield client
    client.reset()


def test_the_lab_proxies_are_there(api: Toxiproxy) -> None:
    proxies = api.proxies()
    assert {name: (p["listen"], p["upstream"], p["enabled"]) for name, p in proxies.items()} == {
        "threaded": ("[::]:7000", "server:7000", True),
        "selectors": ("[::]:7100", "server:7100", True),
        "forking": ("[::]:7200", "server:7200", True),
    }


def test_a_duplicate_toxic_is_refused_with_the_servers_message(api: Toxiproxy) -> None:
    api.add_toxic("threaded", "latency", name="dup", latency=10)
    with pytest.raises(ToxicRejected, match="toxic already exists"):
        api.add_toxic("threaded", "latency", name="dup", latency=20)


def test_a_toxic_with_a_wrongly_typed_attribute_is_refused_with_the_servers_message(api: Toxiproxy) -> None:
    with pytest.raises(ToxicRejected) as info:
        api.add_toxic("threaded", "latency", latency="slow")  # type: ignore[arg-type]
    assert "(400)" in str(info.value)
    assert "latency" in str(info.value).lower()


def test_an_unknown_proxy_is_an_error_naming_it(api: Toxiproxy) -> None:
    with pytest.raises(ToxiproxyError, match="proxy not found"):
        api.add_toxic("nope", "latency", latency=10)


def test_toxiproxy_python_reset_clears_what_the_wrapper_added(lab: Lab, api: Toxiproxy) -> None:
    with api.toxic("threaded", "slicer", average_size=10, size_variation=5, delay=0):
        assert [t["type"] for t in api.toxics("threaded")] == ["slicer"]
        python_client(lab.toxiproxy_url()).reset()
        assert api.toxics("threaded") == []
