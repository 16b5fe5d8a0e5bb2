"""``uvicorn sample_apps.django_app.asgi:application`` from the repository root."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "sample_apps.django_app.settings"
application = get_asgi_application()
