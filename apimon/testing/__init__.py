"""Fake Moesif and MoEngage collectors for tests: real HTTP servers on 127.0.0.1 that validate
every request against the vendors' API references, with fault injection. Usage::

    from apimon.testing import FakeMoesif, FakeMoEngage

    with FakeMoesif() as moesif:
        apimon.init(moesif_application_id=moesif.application_id, moesif_base_url=moesif.url)
        ...  # drive your app
        apimon.flush()
        assert moesif.events[0]["response"]["status"] == 200
"""

from __future__ import annotations

from apimon.testing._server import FakeServer, Recorded, Reply
from apimon.testing.moengage import FakeMoEngage
from apimon.testing.moesif import FakeMoesif

__all__ = ["FakeMoEngage", "FakeMoesif", "FakeServer", "Recorded", "Reply"]
