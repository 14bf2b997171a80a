"""REST API routes, mounted at /api/v1/ (see docs/api.md)."""
from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from tenants.api.views import auth, resources, tenancy

router = DefaultRouter(trailing_slash=True)
router.register("auth/tokens", auth.ApiTokenViewSet, basename="api-token")
router.register("organisations", tenancy.OrganisationViewSet, basename="organisation")
router.register("members", tenancy.MemberViewSet, basename="member")
router.register("invitations", tenancy.InvitationViewSet, basename="invitation")
router.register("plans", tenancy.PlanViewSet, basename="plan")
router.register("audit-log", tenancy.AuditLogViewSet, basename="audit-log")
router.register("instances", resources.InstanceViewSet, basename="instance")
router.register("topics", resources.TopicViewSet, basename="topic")
router.register("groups", resources.ConsumerGroupViewSet, basename="group")
router.register("credentials", resources.CredentialViewSet, basename="credential")
router.register("acl-rules", resources.AclRuleViewSet, basename="acl-rule")

urlpatterns = [
    path("auth/signup/", auth.SignupView.as_view(), name="auth-signup"),
    path("auth/confirm-email/", auth.ConfirmEmailView.as_view(), name="auth-confirm-email"),
    path("auth/login/", auth.LoginView.as_view(), name="auth-login"),
    path("auth/logout/", auth.LogoutView.as_view(), name="auth-logout"),
    path("auth/password-reset/", auth.PasswordResetRequestView.as_view(), name="auth-password-reset"),
    path("auth/password-reset/confirm/", auth.PasswordResetConfirmView.as_view(), name="auth-password-reset-confirm"),
    path("auth/invitations/accept/", auth.InvitationAcceptView.as_view(), name="auth-invitation-accept"),
    path("auth/me/", auth.MeView.as_view(), name="auth-me"),
    *router.urls,
]
