"""moesifdjango's middleware on apimon: ``apimon.compat.moesifdjango.middleware.moesif_middleware``."""

from __future__ import annotations
