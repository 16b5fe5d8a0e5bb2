"""A real Django settings module for the adapter tests (auth, sessions, an SQLite database)."""

from __future__ import annotations

SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.integrations.django.urls"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
MIDDLEWARE = [
    "apimon.integrations.django.ApimonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
APIMON = {
    "store": "off",
    "flush_interval": 3600,
    "identify_company": "tests.integrations.django.views.company_hook",
    "api_version": "2.0",
}
