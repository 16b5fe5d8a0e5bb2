from __future__ import annotations

from django.urls import path

from sample_apps.django_app import views

urlpatterns = [
    path("ping", views.ping),
    path("echo", views.echo),
    path("large", views.large),
    path("work", views.work),
    path("items", views.items_view),
    path("items/<int:item_id>", views.item_view),
    path("form", views.form),
    path("upload", views.upload),
    path("download", views.download),
    path("gzip", views.gzipped),
    path("stream", views.stream),
    path("events", views.events),
    path("cookies", views.cookies),
    path("cached", views.cached),
    path("me", views.me),
    path("partner", views.partner),
    path("login", views.login),
    path("boom", views.boom),
]
