from __future__ import annotations

from django.urls import include, path

from tests.integrations.django import views

api = [
    path("items/<int:pk>", views.item),
]

urlpatterns = [
    path("body", views.read_body),
    path("post", views.read_post),
    path("upload", views.upload),
    path("stream-read", views.stream_read),
    path("ignore", views.ignore),
    path("streaming", views.streaming),
    path("async-streaming", views.async_streaming),
    path("file", views.file_response),
    path("whoami", views.whoami),
    path("async-view", views.async_view),
    path("boom", views.boom),
    path("api/v1/", include(api)),
]
