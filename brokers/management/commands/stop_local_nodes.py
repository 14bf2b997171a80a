"""Stops the broker node processes of this host; the launcher runs it when the platform stops,
so Ctrl-C on ``bin/up`` leaves no broker running behind it."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from brokers.services.provisioning import nodes_stop_on_host


class Command(BaseCommand):
    help = "Stop this host's broker node processes (they restart with the platform)."

    def handle(self, *args: object, **options: object) -> None:
        stopped = nodes_stop_on_host(host_name=settings.MQ_HOST_NAME, reason="stopped with the platform")
        self.stdout.write(f"stopped {len(stopped)} broker node(s) on host {settings.MQ_HOST_NAME}")
