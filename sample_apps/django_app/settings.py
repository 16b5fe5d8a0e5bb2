"""Settings of the sample Django API (no database: the API keeps its items in memory)."""

from __future__ import annotations

import os

SECRET_KEY = "sample-app-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "sample_apps.django_app.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MIDDLEWARE = [] if os.environ.get("APIMON_SAMPLE_BARE") == "1" else ["apimon.integrations.django.ApimonMiddleware"]
APIMON = {"flush_interval": 0.2}
if os.environ.get("APIMON_SAMPLE_COMPANY_HEADER") == "1":
    APIMON["identify_company"] = "sample_apps.common.company_from_header"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
