"""Alert rules and history, the audit log, and the operators' fleet overview."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from brokers.models import Alert, AlertRule, AlertStatus, BrokerNode, Cluster, NodeEvent
from brokers.models.alerting import PLATFORM_KINDS, RuleKind
from brokers.services import alerting
from console.errors import apply_error
from console.forms import AlertRuleForm
from console.render import page
from console.scoping import actor, org_view, require_role, scoped, scoped_get
from tenants.api.views.tenancy import AuditLogFilter
from tenants.errors import ApplicationError
from tenants.models import AuditLog, Instance, InstanceStatus, Role

TENANT_KINDS = [(k.value, k.label) for k in RuleKind if k not in PLATFORM_KINDS]


@org_view()
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    instances = scoped(Instance.objects.exclude(status=InstanceStatus.DELETING), organisation).order_by("name")
    form = AlertRuleForm(request.POST or None, instances=[(i.pk, i.name) for i in instances], kinds=TENANT_KINDS)
    if request.method == "POST":
        require_role(request, Role.MEMBER)
        if form.is_valid():
            data = dict(form.cleaned_data)
            instance = scoped_get(Instance.objects.all(), organisation, pk=data.pop("instance"))
            try:
                rule = alerting.alert_rule_create(instance=instance, actor=actor(request), **data)
            except ApplicationError as exc:
                apply_error(form, exc)
            else:
                messages.success(request, f"Alert rule “{rule.name}” created.")
                return redirect("console:alerts")
    rules = scoped(AlertRule.objects.select_related("instance"), organisation).order_by("instance__name", "id")
    history = scoped(Alert.objects.select_related("rule", "instance"), organisation).order_by("-fired_at")
    status = request.GET.get("status")
    if status in AlertStatus.values:
        history = history.filter(status=status)
    return page(request, "console/operations/alerts.html", {
        "section": "alerts", "rules": rules, "history": Paginator(history, 50).get_page(request.GET.get("page")),
        "form": form, "status": status or "", "has_instances": instances.exists(),
    }, status=400 if form.errors else 200)


@org_view()
@require_POST
def alert_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = scoped_get(AlertRule.objects.all(), request.organisation, pk=rule_id)
    require_role(request, Role.MEMBER)
    alerting.alert_rule_delete(rule=rule, actor=actor(request))
    messages.success(request, f"Alert rule “{rule.name}” deleted.")
    return redirect("console:alerts")


@org_view(Role.ADMIN)
def audit(request: HttpRequest) -> HttpResponse:
    """The same filters as ``GET /api/v1/audit-log/`` (its FilterSet), over the same scoped rows."""
    rows = scoped(AuditLog.objects.all(), request.organisation).order_by("-created_at", "-id")
    filterset = AuditLogFilter(request.GET or None, queryset=rows)
    entries = filterset.qs if filterset.is_bound and filterset.is_valid() else rows
    types = scoped(AuditLog.objects.all(), request.organisation).values_list("object_type", flat=True).distinct()
    actions = scoped(AuditLog.objects.all(), request.organisation).values_list("action", flat=True).distinct()
    query = request.GET.copy()
    query.pop("page", None)
    return page(request, "console/operations/audit.html", {
        "section": "audit", "entries": Paginator(entries, 50).get_page(request.GET.get("page")),
        "filterset": filterset, "types": sorted(set(types)), "actions": sorted(set(actions)), "query": query.urlencode(),
        "filter_errors": filterset.errors if filterset.is_bound else {},
    })


def ops(request: HttpRequest) -> HttpResponse:
    """Platform operators (staff): every cluster, node, recent node event and open alert."""
    if not request.user.is_authenticated:
        return redirect(f"/login/?next={request.path}")
    if not request.user.is_staff:
        raise PermissionDenied("Only platform operators can open this page.")
    return page(request, "console/operations/ops.html", {
        "section": "ops",
        "clusters": Cluster.objects.select_related("organisation").order_by("name"),
        "nodes": BrokerNode.objects.select_related("cluster").order_by("cluster__name", "name"),
        "events": NodeEvent.objects.select_related("node").order_by("-id")[:100],
        "alerts": Alert.objects.filter(status=AlertStatus.FIRING).select_related("rule", "instance__organisation")
        .order_by("-fired_at")[:200],
    })
