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
    access = forms.ChoiceField(
        label="Starting permissions", initial="none",
        choices=[("none", "None: I will add ACL rules"), ("publish", "Publish to every topic"),
                 ("subscribe", "Subscribe to every topic, with any group"),
                 ("publish_subscribe", "Publish and subscribe everywhere")],
        help_text="Creates the matching ACL rules; narrow or delete them on the credential's page.",
        required=False)

    def clean_access(self) -> str:
        return self.cleaned_data.get("access") or "none"


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


class AlertRuleEditForm(forms.Form):
    """What can change on an existing rule. The instance and the condition (kind) stay: the
    threshold's unit depends on the condition, so another condition is another rule."""

    name = forms.CharField(label="Name", max_length=120)
    enabled = forms.BooleanField(label="Enabled (evaluated every minute)", required=False)
    threshold = forms.FloatField(label="Threshold", min_value=0, help_text="Fires when the value is above it (unit in the condition).")
    topic = forms.CharField(label="Only topic", max_length=127, required=False)
    group = forms.CharField(label="Only consumer group", max_length=127, required=False)
    duration_seconds = forms.IntegerField(label="Holds for (seconds)", min_value=0, max_value=7 * 86_400, initial=300,
                                          help_text="The condition must hold this long before the alert fires; 0 fires at once.")
    recipients = forms.CharField(label="Recipients (e-mails, comma-separated)", required=False,
                                 help_text="Empty: the organisation's alert contacts (or its owners and admins).")

    def clean_recipients(self) -> list[str]:
        values = [v.strip() for v in self.cleaned_data["recipients"].split(",") if v.strip()]
        if len(values) > 20:
            raise forms.ValidationError("At most 20 recipients; add an alert contact list address instead.")
        for value in values:
            try:
                forms.EmailField().clean(value)
            except forms.ValidationError as exc:
                raise forms.ValidationError(f"“{value}” is not an e-mail address.") from exc
        return values


class AlertRuleForm(AlertRuleEditForm):
    """A new rule: also which instance and which condition."""

    instance = forms.ChoiceField(label="Instance")
    kind = forms.ChoiceField(label="Condition")
    field_order = ["instance", "name", "kind", "threshold", "topic", "group", "duration_seconds", "recipients", "enabled"]

    def __init__(self, *args: Any, instances: list[tuple[int, str]], kinds: list[tuple[str, str]], **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("enabled", True)
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = instances
        self.fields["kind"].choices = kinds


class AlertContactForm(forms.Form):
    email = forms.EmailField(label="E-mail", help_text="Receives every alert of the organisation's instances "
                                                      "(rules with their own recipients excepted).")
    name = forms.CharField(label="Name", max_length=120, required=False, help_text="Optional, e.g. “On-call rota”.")


class TopicEditForm(forms.ModelForm):
    """A topic's mutable settings; the name and message type are fixed once created."""

    retention_hours = forms.IntegerField(label="Retention (hours)", min_value=1,
                                         help_text="At most the instance's retention.")

    class Meta:
        model = Topic
        fields = ["queue_count", "retention_hours", "description"]
        labels = {"queue_count": "Queues"}
        help_texts = {"queue_count": "Up to 64. Queues can be added, never removed (their messages would be stranded)."}


class GroupEditForm(forms.ModelForm):
    """A consumer group's settings; the name is fixed once created."""

    class Meta:
        model = ConsumerGroup
        fields = ["delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms", "retry_max_backoff_ms",
                  "retry_backoff_multiplier", "description"]
        labels = GroupForm.Meta.labels
        help_texts = {
            **GroupForm.Meta.help_texts,
            "retry_backoff_multiplier": "Each retry waits this many times longer than the one before, up to the longest wait.",
        }


_MIB = 1024 * 1024


class InstanceEditForm(forms.Form):
    """Description and per-instance quotas (at most the plan's; the organisation budgets cap the sums)."""

    description = forms.CharField(label="Description", max_length=500, required=False)
    send_tps = forms.IntegerField(label="Send TPS", min_value=1)
    receive_tps = forms.IntegerField(label="Receive TPS", min_value=1)
    storage_mib = forms.IntegerField(label="Storage (MiB)", min_value=1)
    retention_hours = forms.IntegerField(label="Retention (hours)", min_value=1,
                                         help_text="Lowering it also lowers topics that keep messages longer.")
    max_message_kib = forms.IntegerField(label="Largest message (KiB)", min_value=1)

    #: service field -> form field, so a refused quota shows on its own input.
    ALIASES = {"storage_bytes": "storage_mib", "max_message_bytes": "max_message_kib",
               "org_storage_budget_bytes": "storage_mib", "org_send_tps_budget": "send_tps"}

    def __init__(self, *args: Any, plan: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ceilings = {"send_tps": plan.send_tps, "receive_tps": plan.receive_tps,
                    "storage_mib": plan.storage_bytes // _MIB, "retention_hours": plan.retention_hours,
                    "max_message_kib": plan.max_message_bytes // 1024}
        for name, ceiling in ceilings.items():
            self.fields[name].help_text = " ".join(filter(None, [self.fields[name].help_text,
                                                                 f"Plan {plan.name}: at most {ceiling}."]))

    @staticmethod
    def initial_for(instance: Instance) -> dict[str, Any]:
        """The form's values for ``instance`` (sizes in the form's units)."""
        return {"description": instance.description, "send_tps": instance.send_tps, "receive_tps": instance.receive_tps,
                "storage_mib": instance.storage_bytes // _MIB, "retention_hours": instance.retention_hours,
                "max_message_kib": instance.max_message_bytes // 1024}

    def service_fields(self, instance: Instance) -> dict[str, Any]:
        """The cleaned data as ``instance_update`` takes it (sizes in bytes). A size left at its
        shown (rounded down) value keeps the instance's exact byte count (set through the API)."""
        data = self.cleaned_data
        storage = data["storage_mib"] * _MIB
        if data["storage_mib"] == instance.storage_bytes // _MIB:
            storage = instance.storage_bytes
        largest = data["max_message_kib"] * 1024
        if data["max_message_kib"] == instance.max_message_bytes // 1024:
            largest = instance.max_message_bytes
        return {"description": data["description"], "send_tps": data["send_tps"], "receive_tps": data["receive_tps"],
                "storage_bytes": storage, "retention_hours": data["retention_hours"], "max_message_bytes": largest}


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
