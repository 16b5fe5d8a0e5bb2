"""Django settings for the benchmark: the sample app's, with the variant's middleware."""

from __future__ import annotations

import os

from benchmarks.apps import _apimon, compat_settings, moesif_settings
from sample_apps.django_app.settings import *  # noqa: F403

_VARIANT = os.environ.get("BENCH_VARIANT", "bare")
MIDDLEWARE = {
    "bare": [],
    "apimon": ["apimon.integrations.django.ApimonMiddleware"],
    "apimon-path": ["apimon.integrations.django.ApimonMiddleware"],
    "apimon-build": ["apimon.integrations.django.ApimonMiddleware"],
    "moesif": ["moesifdjango.middleware.moesif_middleware"],
    "apimon-compat": ["apimon.compat.moesifdjango.middleware.moesif_middleware"],
}[_VARIANT]
APIMON = _apimon(_VARIANT)
MOESIF_MIDDLEWARE = compat_settings() if _VARIANT == "apimon-compat" else moesif_settings()
