"""The audit log, and the operators' fleet overview with plan assignment (alerts: :mod:`console.views.alerting`)."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from brokers.models import Alert, AlertStatus, BrokerNode, Cluster, NodeEvent
from console.forms import PlanForm
from console.render import page
from console.scoping import actor, org_view, scoped
from tenants import services
from tenants.api.views.tenancy import AuditLogFilter
from tenants.errors import ApplicationError
from tenants.models import AuditLog, InstanceStatus, Organisation, Role
from tenants.selectors import plans_list

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


def _require_staff(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        return redirect(f"/login/?next={request.path}")
    if not request.user.is_staff:
        raise PermissionDenied("Only platform operators can open this page.")
    return None


def _plan_choices() -> list[tuple[str, str]]:
    return [(p.code, f"{p.name}{'' if p.self_service else ' (operators only)'}") for p in plans_list()]


def ops(request: HttpRequest) -> HttpResponse:
    """Platform operators (staff): every cluster, node, recent node event and open alert, and every
    organisation with its plan (operators may assign any plan, self-service or not)."""
    if (login := _require_staff(request)) is not None:
        return login
    organisations = (Organisation.objects.select_related("plan").order_by("name")
                     .annotate(live_instances=Count("instances", filter=~Q(instances__status=InstanceStatus.DELETING))))
    return page(request, "console/operations/ops.html", {
        "section": "ops",
        "organisations": [(o, PlanForm(initial={"plan": o.plan.code}, plans=_plan_choices(), prefix=f"org{o.pk}"))
                          for o in organisations],
        "clusters": Cluster.objects.select_related("organisation").order_by("name"),
        "nodes": BrokerNode.objects.select_related("cluster").order_by("cluster__name", "name"),
        "events": NodeEvent.objects.select_related("node").order_by("-id")[:100],
        "alerts": Alert.objects.filter(status=AlertStatus.FIRING).select_related("rule", "instance__organisation")
        .order_by("-fired_at")[:200],
    })


@require_POST
def ops_plan_assign(request: HttpRequest, organisation_id: int) -> HttpResponse:
    """Operators put any organisation on any plan (``organisation_plan_assign`` with
    ``operator=True``, as ``POST /api/v1/plans/{code}/assign/``); refused when its usage would not fit."""
    if (login := _require_staff(request)) is not None:
        return login
    organisation = Organisation.objects.select_related("plan").filter(pk=organisation_id).first()
    if organisation is None:
        raise Http404("Organisation not found.")
    form = PlanForm(request.POST, plans=_plan_choices(), prefix=f"org{organisation.pk}")
    if not form.is_valid():
        messages.error(request, f"Pick one of the plans for {organisation.name}.")
        return redirect("console:ops")
    plan = next(p for p in plans_list() if p.code == form.cleaned_data["plan"])
    if plan.pk == organisation.plan_id:
        messages.info(request, f"{organisation.name} is already on the {plan.name} plan.")
        return redirect("console:ops")
    try:
        services.organisation_plan_assign(organisation=organisation, plan=plan, actor=actor(request), operator=True)
    except ApplicationError as exc:
        messages.error(request, f"{organisation.name} stays on {organisation.plan.name}: {exc.message}")
    else:
        messages.success(request, f"{organisation.name} is now on the {plan.name} plan.")
    return redirect("console:ops")
