from __future__ import annotations

from django.urls import path

from tests.compat.apps.django_moesif import views

urlpatterns = [
    path("ping", views.ping),
    path("items", views.items),
    path("health", views.health),
    path("teapot", views.teapot),
    path("drop", views.drop),
    path("whoami", views.whoami),
    path("async", views.async_view),
    path("profiles", views.profiles),
]
