"""The local dashboard over the embedded store: ``apimon serve`` (the ``apimon[ui]`` extra).

Only this package imports Starlette, Jinja2 and uvicorn; the capture core never imports it.
"""

from __future__ import annotations
