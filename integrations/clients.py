"""``capture_outgoing=True``: record the outgoing calls of every HTTP client library installed
(httpx, requests through urllib3, aiohttp). Each is imported only when it is installed; one
this apimon does not know is left as it is, with one log line.

    from apimon.integrations import clients
    clients.instrument()        # -> the names instrumented
    clients.uninstrument()
"""

from __future__ import annotations

import importlib
import importlib.util

from apimon._guard import log_once

#: Library -> the integration module that instruments it (requests goes through urllib3).
LIBRARIES = {
    "httpx": "apimon.integrations.httpx",
    "urllib3": "apimon.integrations.urllib3",
    "aiohttp": "apimon.integrations.aiohttp",
}


def instrument() -> list[str]:
    done = []
    for library, module in LIBRARIES.items():
        if importlib.util.find_spec(library) is None:
            continue
        try:
            if importlib.import_module(module).instrument():
                done.append(library)
        except Exception:
            log_once(
                f"instrument-{library}",
                "apimon: %s could not be instrumented; its calls are not recorded",
                library,
                exc_info=True,
            )
    return done


def uninstrument() -> None:
    for library, module in LIBRARIES.items():
        if importlib.util.find_spec(library) is not None:
            try:
                importlib.import_module(module).uninstrument()
            except Exception:
                log_once(
                    f"uninstrument-{library}", "apimon: undoing %s's instrumentation failed", library, exc_info=True
                )
