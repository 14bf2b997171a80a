"""Top-level URL map: console pages, the versioned REST API, its schema and docs, admin."""
from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("api/v1/", include("tenants.api.urls")),
    path("api/v1/", include("brokers.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("accounts/", include("tenants.urls")),
    path("admin/", admin.site.urls),
    path("", include("console.urls")),
]
