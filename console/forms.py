"""Console forms. They check shape (types, lengths, model validators) so errors show inline at
once; business rules (quotas, uniqueness, roles) stay in the services, whose errors are attached
to the same forms by :func:`console.errors.apply_error`."""
from __future__ import annotations

from typing import Any

from django import forms

from tenants.models import (
    AclAction,
    AclEffect,
    AclResourceType,
    ConsumerGroup,
    Instance,
    Role,
    Topic,
)
from tenants.validators import validate_cidr


class SignupForm(forms.Form):
    organisation_name = forms.CharField(label="Organisation name", max_length=120,
                                        widget=forms.TextInput(attrs={"autocomplete": "organization"}))
    email = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Password", min_length=10, help_text="At least 10 characters, not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class LoginForm(forms.Form):
    email = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class OrganisationForm(forms.Form):
    name = forms.CharField(label="Organisation name", max_length=120)


def _role_choices(actor_role: str) -> list[tuple[str, str]]:
    # Only owners grant ownership (the service refuses it too).
    return [(r.value, r.label) for r in Role if r != Role.OWNER or actor_role == Role.OWNER]


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, actor_role: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(actor_role)
        self.fields["role"].initial = Role.MEMBER


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, actor_role: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(actor_role)


class ApiTokenForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, help_text="What the token is for, e.g. “CI deploys”.")


class InstanceForm(forms.ModelForm):
    class Meta:
        model = Instance
        fields = ["name", "description"]
        help_texts = {"name": "Letters, digits, “-” and “_”. Quotas start at your plan's limits; lower them later if needed."}


class TopicForm(forms.ModelForm):
    retention_hours = forms.IntegerField(label="Retention (hours)", required=False, min_value=1,
                                         help_text="Empty: the instance's retention (also the maximum).")

    class Meta:
        model = Topic
        fields = ["name", "message_type", "queue_count", "retention_hours", "description"]
        labels = {"message_type": "Message type", "queue_count": "Queues"}
        help_texts = {
            "message_type": "Normal; FIFO (ordered per message group); Delay (delivery at a chosen time); "
                            "Transaction (half messages committed or rolled back). Fixed once created.",
            "queue_count": "1 to 64. Queues can be added later, never removed.",
        }


class GroupForm(forms.ModelForm):
    class Meta:
        model = ConsumerGroup
        fields = ["name", "delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms",
                  "retry_max_backoff_ms", "retry_backoff_multiplier", "description"]
        labels = {
            "delivery": "Delivery", "fifo": "Consume FIFO topics in order (one message group at a time)",
            "max_delivery_attempts": "Max delivery attempts", "retry_initial_backoff_ms": "First retry after (ms)",
            "retry_max_backoff_ms": "Longest retry wait (ms)", "retry_backoff_multiplier": "Backoff multiplier",
        }
        help_texts = {
            "delivery": "Clustering: each message goes to one consumer of the group. Broadcast: to every consumer.",
            "max_delivery_attempts": "After this many failed deliveries the message moves to the dead-letter queue %DLQ%<group>.",
        }


class CredentialForm(forms.Form):
    description = forms.CharField(label="Description", max_length=500, required=False,
                                  help_text="Which application uses it, e.g. “order service (prod)”.")


class AclRuleForm(forms.Form):
    resource_type = forms.ChoiceField(label="Resource", choices=AclResourceType.choices)
    pattern = forms.CharField(label="Name pattern", max_length=128,
                              help_text="Exact name, a prefix ending in “*”, or “*” for all.")
    actions = forms.MultipleChoiceField(label="Actions", choices=AclAction.choices, widget=forms.CheckboxSelectMultiple,
                                        help_text="Group rules only take Subscribe.")
    effect = forms.ChoiceField(label="Effect", choices=AclEffect.choices)
    source_cidrs = forms.CharField(label="Source networks (CIDR, comma-separated)", required=False,
                                   help_text="Empty: any address, e.g. 10.0.0.0/8, 2001:db8::/32")
    description = forms.CharField(label="Description", max_length=500, required=False)

    def clean_source_cidrs(self) -> list[str]:
        values = [v.strip() for v in self.cleaned_data["source_cidrs"].split(",") if v.strip()]
        for value in values:
            validate_cidr(value)
        return values


class ResetOffsetForm(forms.Form):
    topic = forms.ChoiceField(label="Topic")
    timestamp = forms.DateTimeField(label="Reset to (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                    input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])

    def __init__(self, *args: Any, topics: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topic"].choices = [(t, t) for t in topics]


class ConfirmNameForm(forms.Form):
    """Typing the name is the confirmation for deletions that lose data."""

    confirm = forms.CharField(label="Type the name to confirm")

    def __init__(self, *args: Any, expected: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.expected:
            raise forms.ValidationError(f"Type “{self.expected}” exactly to confirm.")
        return value


class AlertRuleForm(forms.Form):
    instance = forms.ChoiceField(label="Instance")
    name = forms.CharField(label="Name", max_length=120)
    kind = forms.ChoiceField(label="Condition")
    threshold = forms.FloatField(label="Threshold", min_value=0, help_text="Fires when the value is above it (unit in the condition).")
    topic = forms.CharField(label="Only topic", max_length=127, required=False)
    group = forms.CharField(label="Only consumer group", max_length=127, required=False)
    duration_seconds = forms.IntegerField(label="Holds for (seconds)", min_value=0, initial=300)
    recipients = forms.CharField(label="Recipients (e-mails, comma-separated)", required=False,
                                 help_text="Empty: the organisation's alert contacts (or its owners and admins).")

    def __init__(self, *args: Any, instances: list[tuple[int, str]], kinds: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = instances
        self.fields["kind"].choices = kinds

    def clean_recipients(self) -> list[str]:
        values = [v.strip() for v in self.cleaned_data["recipients"].split(",") if v.strip()]
        for value in values:
            forms.EmailField().clean(value)
        return values


class PlanForm(forms.Form):
    plan = forms.ChoiceField(label="Plan")

    def __init__(self, *args: Any, plans: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = plans


_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class MessageQueryForm(forms.Form):
    """Find messages: by id; or in a topic by key; or in a topic by store time (paged)."""

    msg_id = forms.RegexField(r"^[0-9A-Fa-f]{1,64}$", label="Message id", required=False, max_length=64,
                              error_messages={"invalid": "A message id is hexadecimal (up to 64 characters)."})
    topic = forms.ChoiceField(label="Topic", required=False)
    key = forms.CharField(label="Key", required=False, max_length=255)
    since = forms.DateTimeField(label="Stored from (UTC)", required=False, input_formats=_DATETIME_FORMATS,
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(label="Stored before (UTC)", required=False, input_formats=_DATETIME_FORMATS,
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    cursor = forms.RegexField(r"^\d+:\d+$", required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, topics: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topic"].choices = [("", "—"), *((t, t) for t in topics)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("msg_id"):
            data["mode"] = "id"
        elif not data.get("topic"):
            raise forms.ValidationError("Give a message id, or pick a topic and give a key or a time.")
        elif data.get("key"):
            data["mode"] = "key"
        elif data.get("since"):
            if data.get("until") and data["until"] <= data["since"]:
                self.add_error("until", "Must be after “Stored from”.")
            data["mode"] = "time"
        else:
            raise forms.ValidationError("With a topic, give a key or a “Stored from” time.")
        return data


class ResetOffsetApplyForm(forms.Form):
    """The previewed reset, sent back to be applied."""

    topic = forms.CharField(max_length=127, widget=forms.HiddenInput)
    timestamp_ms = forms.IntegerField(min_value=0, max_value=2**62, widget=forms.HiddenInput)
    confirm = forms.BooleanField(label="I understand the group's position moves for every consumer of it")
