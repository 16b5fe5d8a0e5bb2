"""``uvicorn sample_apps.django_app.asgi:application`` from the repository root."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from sample_apps.common import spec_shaped

os.environ["DJANGO_SETTINGS_MODULE"] = "sample_apps.django_app.settings"
# The scope as the ASGI spec also allows it, when the scenario suite asks: outermost.
application = spec_shaped(get_asgi_application())
