"""Pages linked from e-mails, mounted at /accounts/."""
from __future__ import annotations

from django.urls import path

from tenants import views

app_name = "tenants"
urlpatterns = [
    path("confirm-email/<str:token>/", views.confirm_email, name="confirm-email"),
    path("reset-password/<str:uid>/<str:token>/", views.password_reset, name="password-reset"),
    path("invitations/<str:key>/", views.invitation_accept_page, name="invitation-accept"),
]
