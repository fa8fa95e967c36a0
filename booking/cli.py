"""`booking`: run the whole service, migrate, manage API keys, and show its status.

Without DATABASE_URL / REDIS_URL, every command uses the embedded stack kept under
BOOKING_HOME (started if it is not running, stopped again by whoever started it)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from booking.config import get_settings
from booking.db import REPO_ROOT
from booking.secrets import ensure_local_secret_key
from booking.stack import fresh_metrics_dir

log = logging.getLogger("booking")

LOG_FORMAT_UP = "text"  # what `booking up` (`make run`) logs in unless LOG_FORMAT says otherwise


@contextlib.contextmanager
def service_urls(with_redis: bool) -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL: from the environment, or an embedded server."""
    from booking.stack import EmbeddedStack

    settings = get_settings()
    ensure_local_secret_key(settings.home)
    urls = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    needs_redis = with_redis and not urls["REDIS_URL"]
    if urls["DATABASE_URL"] and not needs_redis:
        yield urls
        return
    stack = EmbeddedStack(settings.home)
    if not urls["DATABASE_URL"]:
        if not stack.postgres.is_running():  # stdout stays clean for `keys create` JSON
            print(f"Starting embedded PostgreSQL under {settings.home} ...", file=sys.stderr, flush=True)
    try:
        stack.start(with_redis=needs_redis)
        urls["DATABASE_URL"] = urls["DATABASE_URL"] or stack.postgres.url
        if needs_redis:
            urls["REDIS_URL"] = stack.redis.url
        os.environ.update({k: v for k, v in urls.items() if v})
        get_settings.cache_clear()
        yield urls
    finally:
        stack.stop()


def prepare_database() -> None:
    """Migrate, then make sure the bootstrap admin key exists."""
    from booking.db import migrate
    from booking.services.keys import ensure_key

    migrate()
    if get_settings().bootstrap_admin_key:
        ensure_key(get_settings().bootstrap_admin_key)


def cmd_up(args: argparse.Namespace) -> int:
    port = str(args.port or get_settings().port)
    if not get_settings().database_url:
        # The embedded stack is for a developer's machine, whose receivers are on loopback.
        os.environ.setdefault("BOOKING_WEBHOOK_ALLOW_PRIVATE", "1")
    with service_urls(with_redis=True) as urls:
        prepare_database()
        env = {**os.environ, **urls, "PORT": port,
               "BIND_HOST": os.environ.get("BIND_HOST", "127.0.0.1"),
               # for the person at the terminal, where honcho interleaves the processes'
               # lines under its own prefixes; LOG_FORMAT=json when a machine reads them
               "LOG_FORMAT": os.environ.get("LOG_FORMAT") or LOG_FORMAT_UP,
               # every process writes its metrics here and any web process serves their sum
               "PROMETHEUS_MULTIPROC_DIR": (os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                                            or str(get_settings().home / "metrics")),
               # the Procfile's gunicorn and dramatiq are the ones installed beside us
               "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
        print_banner(port)
        return run_procfile(env, port)


def print_banner(port: str) -> None:
    key_hint = ("the key in BOOKING_BOOTSTRAP_ADMIN_KEY" if get_settings().bootstrap_admin_key else
                "one from: .venv/bin/booking keys create --name me --role admin")
    print(f"\nBooking API on http://127.0.0.1:{port}  (docs: http://127.0.0.1:{port}/docs)\n"
          f"Admin key: {key_hint}\nStop with Ctrl-C.\n", flush=True)


RESTART_DELAY_S = 1
QUICK_EXIT_S = 10  # a start that dies sooner than this counts as failing at once
QUICK_EXITS_ALLOWED = 3


def run_procfile(env: dict[str, str], port: str) -> int:
    """Run the Procfile under honcho until stopped. Honcho stops every process when one
    of them exits (dramatiq exits when one of its worker processes is killed); as a
    production supervisor would, start them all again: the servers and every accepted
    request are untouched. Give up only if they keep dying at once."""
    stopping: list[int] = []
    running: list[subprocess.Popen] = []

    def forward(signum, _frame):
        stopping.append(signum)
        for honcho in running:
            honcho.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    quick_exits = 0
    while not stopping:
        started = time.monotonic()
        fresh_metrics_dir(Path(env["PROMETHEUS_MULTIPROC_DIR"]))  # each start's processes alone
        running[:] = [subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f",
                                        str(REPO_ROOT / "Procfile"), "-d", str(REPO_ROOT), "-p", port],
                                       env=env)]
        if stopping:  # a signal that came while we were starting it
            running[0].send_signal(stopping[0])
        code = _wait(running[0], stopping)
        if stopping:
            break
        quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_S else 0
        if quick_exits >= QUICK_EXITS_ALLOWED:
            print(f"booking: the processes keep exiting at once (code {code}); giving up", file=sys.stderr)
            return code or 1
        print(f"booking: a process exited (code {code}); starting them all again", file=sys.stderr,
              flush=True)
        time.sleep(RESTART_DELAY_S)
    return 0


def _wait(honcho: subprocess.Popen, stopping: list[int]) -> int:
    while True:
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            stopping.append(signal.SIGINT)  # the terminal sent it to honcho too; wait for it


def cmd_migrate(_args: argparse.Namespace) -> int:
    with service_urls(with_redis=False):
        prepare_database()
    print("Database is at the newest revision.")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from booking.services.keys import create_key

    with service_urls(with_redis=False):
        prepare_database()
        created = create_key(args.name, args.role)
    print(json.dumps({"id": str(created.api_key.id), "name": args.name, "role": args.role,
                      "key": created.key, "webhook_secret": created.webhook_secret}, indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import sqlalchemy.exc

    from booking.services.ops import OpsSummaryOut, ops_summary
    from booking.status import describe, summary_urls

    try:
        with summary_urls():
            summary = OpsSummaryOut().dump(ops_summary())
    except sqlalchemy.exc.SQLAlchemyError as error:
        print(f"booking: cannot read the summary from PostgreSQL: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else describe(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booking", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run web and workers (Procfile), embedded servers if needed")
    up.add_argument("--port", type=int, help="HTTP port (default: PORT or 8000)")
    up.set_defaults(func=cmd_up)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command",
                                                                              required=True)
    create = keys.add_parser("create", help="create an API key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["admin", "client"])
    create.set_defaults(func=cmd_keys_create)
    status = commands.add_parser("status", help="queue, decisions, latency, workers and webhooks, now")
    status.add_argument("--json", action="store_true", help="as GET /v1/ops/summary answers it")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
