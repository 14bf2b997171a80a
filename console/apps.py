from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "console"
    verbose_name = "Web console"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from console.live import on_instance_saved
        from tenants.models import Instance

        post_save.connect(on_instance_saved, sender=Instance, dispatch_uid="console.live.instance")
