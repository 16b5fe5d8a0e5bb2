"""Drop-ins for Moesif's Python middlewares, installed as ``apimon.compat``.

Prefix the Moesif package path with ``apimon.compat.`` and keep the settings dict, the hooks and
the ``update_user`` / ``update_company`` calls::

    from apimon.compat.moesifwsgi import MoesifMiddleware      # was: from moesifwsgi import ...
    from apimon.compat.moesifasgi import MoesifMiddleware      # was: from moesifasgi import ...
    MIDDLEWARE = ["apimon.compat.moesifdjango.middleware.moesif_middleware", ...]

No Moesif package is imported. docs/migrating-from-moesif.md lists every setting and what
differs on purpose.
"""

from __future__ import annotations

# Run from the repository root, ``import compat`` would load this folder a second time as a
# separate top-level package: refuse it, as apimon.integrations does.
if __name__ != "apimon.compat":
    raise ImportError("import the Moesif drop-ins as apimon.compat, not as a top-level 'compat' package")
