"""Framework adapters, installed as ``apimon.integrations``."""

from __future__ import annotations

# Run from the repository root, ``import integrations`` would load this folder a second time as a
# separate top-level package (``integrations.wsgi is not apimon.integrations.wsgi``): refuse it.
if __name__ != "apimon.integrations":
    raise ImportError("import the adapters as apimon.integrations, not as a top-level 'integrations' package")
