from django.apps import AppConfig


class BrokersConfig(AppConfig):
    """Broker clusters, nodes, orchestration. `brokers/__init__.py` stays empty on purpose:
    the Django-free runtime in `brokers.node` must import without loading this app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "brokers"
    verbose_name = "Broker fleet"

    def ready(self) -> None:
        from brokers import receivers
        from tenants.signals import instance_created, instance_state_changed

        instance_created.connect(receivers.on_instance_created, dispatch_uid="brokers.provision")
        instance_state_changed.connect(receivers.on_instance_state_changed, dispatch_uid="brokers.push")
