"""Account endpoints: sign-up, e-mail confirmation, session login/logout, password reset,
invitation acceptance, the current user, personal API tokens."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle
from rest_framework.views import APIView

from tenants import selectors, services
from tenants.api import serializers as s
from tenants.api.scoping import actor_from_request


class _PublicView(APIView):
    """Unauthenticated endpoints: no session (hence no CSRF dance), rate-limited by scope."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]


def _me(request: Request) -> dict[str, Any]:
    return s.MeSerializer(request.user).data


class SignupView(_PublicView):
    throttle_scope = "signup"

    @extend_schema(request=s.SignupSerializer, responses={201: s.SignupResponseSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """Create an (unconfirmed) account and its organisation; a confirmation link is e-mailed."""
        data = s.SignupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, organisation = services.user_signup(
            organisation_name=data.validated_data["organisation_name"], email=data.validated_data["email"],
            password=data.validated_data["password"], actor=actor_from_request(request),
        )
        body = {"detail": "Check your e-mail to confirm the address.", "email": user.email,
                "organisation": organisation.slug}
        return Response(body, status=status.HTTP_201_CREATED)


class ConfirmEmailView(_PublicView):
    throttle_scope = "signup"

    @extend_schema(request=s.ConfirmEmailSerializer, responses={200: s.DetailSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """Confirm the address with the token from the e-mailed link."""
        data = s.ConfirmEmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_confirm_email(token=data.validated_data["token"])
        return Response({"detail": "E-mail confirmed; you can log in."})


class LoginView(_PublicView):
    throttle_scope = "login"

    @extend_schema(request=s.LoginSerializer, responses={200: s.MeSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """Log in with e-mail and password; starts a session (cookie) for the console."""
        data = s.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_authenticate(request=request._request, email=data.validated_data["email"],
                                          password=data.validated_data["password"])
        login(request._request, user)
        request.user = user
        return Response(_me(request))


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        """End the session (API tokens are unaffected; revoke them separately)."""
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetRequestView(_PublicView):
    throttle_scope = "password_reset"

    @extend_schema(request=s.PasswordResetRequestSerializer, responses={202: s.DetailSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """E-mail a reset link. Always 202, so the endpoint cannot tell who has an account."""
        data = s.PasswordResetRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"])
        return Response({"detail": "If the address has an account, a reset link is on its way."},
                        status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(_PublicView):
    throttle_scope = "password_reset"

    @extend_schema(request=s.PasswordResetConfirmSerializer, responses={200: s.DetailSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """Set a new password with the uid and token from the e-mailed link."""
        data = s.PasswordResetConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data)
        return Response({"detail": "Password changed."})


class InvitationAcceptView(APIView):
    """Open to anyone holding the key (the password proves or sets the account)."""

    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(request=s.InvitationAcceptSerializer, responses={200: s.MembershipBriefSerializer})
    def post(self, request: Request) -> Response:
        """Accept an invitation: creates the account (with this password) or joins the existing one
        (proving it with its password)."""
        data = s.InvitationAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.invitation_accept(**data.validated_data, actor=actor_from_request(request))
        return Response(s.MembershipBriefSerializer(membership).data)


class MeView(APIView):
    @extend_schema(responses={200: s.MeSerializer})
    def get(self, request: Request) -> Response:
        """The current user, with their organisations and roles."""
        return Response(_me(request))


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Personal API tokens of the current user (not organisation-owned: they act as the user,
    who still selects an organisation per request)."""

    serializer_class = s.ApiTokenSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return s.ApiToken.objects.none()
        return selectors.api_tokens_of_user(user=self.request.user)

    def get_throttles(self) -> list[BaseThrottle]:
        if self.action == "create":
            self.throttle_scope = "token_create"
            return [ScopedRateThrottle()]
        return super().get_throttles()

    @extend_schema(request=s.ApiTokenSerializer, responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a token; the response's ``token`` is the only time it is shown."""
        data = s.ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.api_token_create(user=request.user, name=data.validated_data["name"],
                                               actor=actor_from_request(request))
        body = s.ApiTokenCreatedSerializer(token).data | {"token": raw}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke a token (it stays listed with ``revoked_at``)."""
        services.api_token_revoke(token=self.get_object(), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
