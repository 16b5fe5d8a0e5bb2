"""Django settings for the benchmark: the sample app's URLs, with the variant's middleware."""

from __future__ import annotations

import os

from benchmarks.apps import _apimon, moesif_settings

SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "sample_apps.django_app.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
_VARIANT = os.environ.get("BENCH_VARIANT", "bare")
MIDDLEWARE = {
    "bare": [],
    "apimon": ["apimon.integrations.django.ApimonMiddleware"],
    "apimon-path": ["apimon.integrations.django.ApimonMiddleware"],
    "moesif": ["moesifdjango.middleware.moesif_middleware"],
}[_VARIANT]
APIMON = _apimon(_VARIANT)
MOESIF_MIDDLEWARE = moesif_settings()
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
