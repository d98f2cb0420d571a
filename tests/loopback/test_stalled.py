"""lab.inlab.stalled: a connection whose closed window leaves the server owing bytes, against both real servers."""

from __future__ import annotations

import pytest

from lab.inlab.stalled import StalledReply
from lab.testing import running_server


@pytest.mark.parametrize("impl", ["threaded", "selectors", "forking"])
def test_the_window_closes_with_most_of_the_answer_still_at_the_server(impl: str) -> None:
    with running_server(impl) as srv:
        stalled = StalledReply(srv.host, srv.port).open()
        try:
            assert 0 < stalled.queued < stalled.answer // 2
            assert stalled.owed > stalled.answer // 2 and stalled.local_port > 0
        finally:
            stalled.close()
        assert stalled.sock is None
