"""`make bench`: every system on the same data, machine and load generator, back to
back; a table on stdout, bench-results/latest.json and bench-results/latest.png.

Systems: ceiling (pgbench, the pipeline's SQL per booking), sync-naive, sync-locked
(benchmarks/sync_app.py), pipeline (this service: POST -> 202 -> long-poll).
Scenarios: uniform, hot, contended, scale (uniform over 1M preloaded bookings),
uniform with 1 and 2 worker processes, spike (a burst of 5,000 creates for one
provider's 500 slots from 200 connections: benchmarks/spike.py), seats (30 customers
for each of one provider's 100 sessions of 20 seats, through the pipeline) and waiters."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import data, spike
from benchmarks.ceiling import run_ceiling
from benchmarks.load import Run, closed_loop, guarded, open_loop
from benchmarks.report import SEATS_COLUMNS, print_table, write_chart
from benchmarks.systems import (
    CpuMeter,
    PeakRss,
    accept_job,
    pipeline_job,
    start_web,
    start_workers,
    sync_job,
)
from benchmarks.waiters import measure_waiters

CLIENTS = 16


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def figures(run: Run, double: int, rss: float, cpu: CpuMeter | None = None) -> dict:
    extra = {"cpu_ms_per_decision": cpu.per_decision_ms(len(run.latencies_ms))} if cpu else {}
    return {"accepted_per_s": round(run.accepted_per_s(), 1), "decided_per_s": round(run.decided_per_s(), 1),
            "p50_ms": round(run.percentile(50), 1), "p95_ms": round(run.percentile(95), 1),
            "p99_ms": round(run.percentile(99), 1), "double_bookings": double,
            "rss_mb": round(rss, 1), "outcomes": dict(run.outcomes), "requests": len(run.latencies_ms),
            **extra}


class Bench:
    def __init__(self, args, engine, env, pg_port, log_dir: Path):
        self.args, self.engine, self.env, self.pg_port, self.log_dir = args, engine, env, pg_port, log_dir
        self.results: dict[str, dict[str, dict]] = {}

    def record(self, scenario: str, system: str, result: dict) -> None:
        self.results.setdefault(scenario, {})[system] = result
        say(f"  {scenario:<12} {system:<15} decided/s {result['decided_per_s']:>8}  "
            f"p99 {result.get('p99_ms')} ms  double {result.get('double_bookings')}  "
            f"CPU ms/decision {result.get('cpu_ms_per_decision')}")
        if "over_capacity" in result:
            say(f"  {'':<12} {'':<15} " + "  ".join(f"{k} {result.get(k)}" for k in SEATS_COLUMNS))

    def setup(self, scenario: str, preload: int = 0):
        one_provider = scenario in ("hot", "contended", "spike", "seats")
        key, key_id, providers = data.reset(self.engine, 1 if one_provider else 1000)
        if preload:
            say(f"preloading {preload:,} bookings ...")
            data.preload_bookings(self.engine, key_id, preload // len(providers))
        return key, key_id, providers

    def ceiling(self, scenario: str, key_id: str, providers: list[str]) -> None:
        data.clear_run(self.engine)
        with CpuMeter() as cpu:
            result = run_ceiling(self.pg_port, key_id, len(providers), self.args.ceiling_seconds)
        result["cpu_ms_per_decision"] = cpu.per_decision_ms(result["transactions"])
        result.update(double_bookings=data.double_bookings(self.engine, "bookings"))
        self.record(scenario, "ceiling", result)

    def sync(self, scenario: str, mode: str, providers: list[str], total: int) -> None:
        data.clear_run(self.engine)
        env = {**self.env, "BENCH_SYNC_MODE": mode, "BENCH_SYNC_DSN": self.env["DATABASE_URL"]}
        web, url = start_web("benchmarks.sync_app:create_app()", env, self.log_dir, f"sync-{mode}")
        try:
            with PeakRss([web]) as rss, CpuMeter() as cpu:
                run = closed_loop(url, sync_job(data.requests_for(scenario, providers)), CLIENTS, total)
        finally:
            web.stop()
        self.record(scenario, f"sync-{mode}",
                    figures(run, data.double_bookings(self.engine, "bench_sync_bookings"), rss.peak, cpu))

    def pipeline(self, scenario: str, key: str, providers: list[str], total: int,
                 processes: int = 2, system: str = "pipeline", half_load: bool = False,
                 prefer_wait: bool = False, body_for=None, seated: bool = False) -> None:
        data.clear_run(self.engine)
        web, url = start_web("api:create_app()", self.env, self.log_dir)
        workers = start_workers(self.env, self.log_dir, processes)
        headers = {"Authorization": f"Bearer {key}"}
        job = pipeline_job(data.requests_for(scenario, providers), prefer_wait, body_for)
        try:
            with PeakRss([web, workers]) as rss, CpuMeter() as cpu:
                run = closed_loop(url, job, CLIENTS, total, headers)
            result = figures(run, data.double_bookings(self.engine, "bookings", seated), rss.peak, cpu)
            if seated:
                result.update(succeeded=run.outcomes.get("succeeded", 0), **data.seat_figures(self.engine))
            if half_load:
                data.clear_run(self.engine)
                rate = run.decided_per_s() / 2
                say(f"  open loop at half the peak: {rate:.0f} requests/s ...")
                half = open_loop(url, pipeline_job(data.requests_for(scenario, providers, seed=11)),
                                 rate, self.args.half_load_seconds, headers)
                result.update(p99_half_load_ms=round(half.percentile(99), 1),
                              p50_half_load_ms=round(half.percentile(50), 1),
                              half_load_rate=round(rate, 1))
        finally:
            web.stop()
            workers.stop()
        self.record(scenario, system, result)

    def seats_pipeline(self, key: str, provider_id: str) -> None:
        """SEATS_REQUESTS creates of a seated service, each a customer of its own, for the
        provider's SEATS_SESSIONS sessions (shuffled), closed loop like `uniform`; then
        the sessions' live bookings counted against their capacity in SQL."""
        service_id = data.add_seated_service(self.engine, provider_id)
        self.pipeline("seats", key, [provider_id], data.SEATS_REQUESTS,
                      body_for=data.seat_body(service_id), seated=True)

    def spike_pipeline(self, key: str, provider_id: str) -> None:
        """The burst, submitted only; then wait for the queue to drain and check the history."""
        data.clear_run(self.engine)
        web, url = start_web("api:create_app()", self.env, self.log_dir)
        workers = start_workers(self.env, self.log_dir, 2)
        try:
            with CpuMeter() as cpu:
                burst = self._burst(url, accept_job(data.requests_for("spike", [provider_id])),
                                    {"Authorization": f"Bearer {key}"})
                drained = spike.wait_for_drain(self.engine, provider_id)
        finally:
            web.stop()
            workers.stop()
        result, extra = spike.pipeline_figures(self.engine, provider_id, burst,
                                               data.double_bookings(self.engine, "bookings"))
        self.results.setdefault("spike", {})["pipeline"] = result
        say(f"  spike        pipeline        {result}")
        say(f"               drained: {drained}  {extra}  "
            f"CPU ms/request {cpu.per_decision_ms(spike_total(burst))}")

    def spike_sync(self, provider_id: str) -> None:
        data.clear_run(self.engine)
        env = {**self.env, "BENCH_SYNC_MODE": "locked", "BENCH_SYNC_DSN": self.env["DATABASE_URL"]}
        web, url = start_web("benchmarks.sync_app:create_app()", env, self.log_dir, "sync-locked-spike")
        try:
            with CpuMeter() as cpu:
                burst = self._burst(url, sync_job(data.requests_for("spike", [provider_id])))
        finally:
            web.stop()
        result, extra = spike.sync_figures(burst, data.double_bookings(self.engine, "bench_sync_bookings"))
        self.results.setdefault("spike", {})["sync-locked"] = result
        say(f"  spike        sync-locked     {result}")
        say(f"               {extra}  CPU ms/request {cpu.per_decision_ms(spike_total(burst))}")

    def _burst(self, url: str, job, headers=None) -> Run:
        return closed_loop(url, guarded(job), spike.SPIKE_CONNECTIONS, data.SPIKE_REQUESTS, headers,
                           timeout=spike.SPIKE_TIMEOUT_S)


    def waiters_pipeline(self, key: str, providers: list[str]) -> None:
        """1,000 clients long-polling queued requests at once (benchmarks/waiters.py); the
        workers start only once everyone waits and /healthz and submits have been timed."""
        data.clear_run(self.engine)
        web, url = start_web("api:create_app()", self.env, self.log_dir)
        started = []
        try:
            result = measure_waiters(url, [key], data.requests_for("uniform", providers, seed=13),
                                     lambda: started.append(start_workers(self.env, self.log_dir, 2)),
                                     database_url=self.env["DATABASE_URL"], say=say)
        finally:
            web.stop()
            for workers in started:
                workers.stop()
        self.results.setdefault("waiters", {})["pipeline"] = result
        say(f"  waiters      pipeline        {result}")


def spike_total(run: Run) -> int:
    return sum(run.outcomes.values())


def run_all(bench: Bench, args) -> None:
    n = args.requests
    wanted = set(args.only or ())
    for scenario in ("uniform", "hot", "contended"):
        if wanted and scenario not in wanted:
            continue
        say(f"scenario {scenario}")
        key, key_id, providers = bench.setup(scenario)
        if scenario != "contended":
            bench.ceiling(scenario, key_id, providers)
        bench.sync(scenario, "naive", providers, n)
        bench.sync(scenario, "locked", providers, n)
        bench.pipeline(scenario, key, providers, n, half_load=scenario == "uniform")
        if scenario in ("uniform", "hot"):  # one round trip per booking instead of two
            bench.pipeline(scenario, key, providers, n, system="pipeline-prefer", prefer_wait=True)
    if not wanted or "scale" in wanted:
        say("scenario scale")
        key, key_id, providers = bench.setup("scale", preload=args.preload)
        bench.ceiling("scale", key_id, providers)
        bench.sync("scale", "locked", providers, n)
        bench.pipeline("scale", key, providers, n)
    if not wanted or "workers" in wanted:
        say("scenario uniform by worker processes")
        key, key_id, providers = bench.setup("uniform")
        for processes in (1, 2):
            bench.pipeline(f"uniform-{processes}w", key, providers, n, processes=processes)
    if not wanted or "spike" in wanted:
        say(f"scenario spike: {data.SPIKE_REQUESTS:,} creates for {data.SPIKE_SLOTS} slots of one provider, "
            f"{spike.SPIKE_CONNECTIONS} connections")
        key, _, providers = bench.setup("spike")
        bench.spike_pipeline(key, providers[0])
        bench.spike_sync(providers[0])
    if not wanted or "seats" in wanted:
        say(f"scenario seats: {data.SEATS_PER_SESSION} customers for each of {data.SEATS_SESSIONS} "
            f"sessions of {data.SEATS_CAPACITY} seats ({data.SEATS_REQUESTS:,} creates)")
        key, _, providers = bench.setup("seats")
        bench.seats_pipeline(key, providers[0])
    if not wanted or "waiters" in wanted:
        say("scenario waiters: 1,000 concurrent long-polls (?wait=30) on queued requests")
        key, _, providers = bench.setup("waiters")  # 1,000 providers: short decision transactions
        bench.waiters_pipeline(key, providers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", 1200)))
    parser.add_argument("--preload", type=int, default=1_000_000)
    parser.add_argument("--ceiling-seconds", type=int, default=8)
    parser.add_argument("--half-load-seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", nargs="*",
                        choices=("uniform", "hot", "contended", "scale", "workers", "spike", "seats",
                                 "waiters"),
                        help="run only these scenarios (while iterating; the goals need them all)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    with bench_environment() as (engine, env, pg_port, log_dir):
        bench = Bench(args, engine, env, pg_port, log_dir)
        run_all(bench, args)
    report = {"scenarios": bench.results, "machine": machine(),
              "settings": {"clients": CLIENTS, "requests_per_run": args.requests,
                           "spike": {"requests": data.SPIKE_REQUESTS, "slots": data.SPIKE_SLOTS,
                                     "connections": spike.SPIKE_CONNECTIONS},
                           "seats": {"sessions": data.SEATS_SESSIONS, "capacity": data.SEATS_CAPACITY,
                                     "customers_per_session": data.SEATS_PER_SESSION},
                           "preloaded_bookings": args.preload, "seconds": round(time.monotonic() - began)}}
    args.out.mkdir(exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2))
    write_chart(report, args.out / "latest.png")
    print_table(report)
    say(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'} "
        f"in {report['settings']['seconds']} s")
    return 0


def machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


class bench_environment:
    """Embedded PostgreSQL and Redis (durable settings, as production would run) unless
    DATABASE_URL / REDIS_URL are given; the schema from the migrations."""

    def __enter__(self):
        from booking.config import get_settings
        from booking.db import get_engine, migrate
        from booking.stack import EmbeddedStack, fresh_metrics_dir

        self.tmp = tempfile.TemporaryDirectory(prefix="booking-bench-")
        home = Path(self.tmp.name)
        self.stack = None
        if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
            self.stack = EmbeddedStack(home / "stack", durable=True)
            self.stack.start()
            os.environ.update(DATABASE_URL=self.stack.postgres.url, REDIS_URL=self.stack.redis.url)
        os.environ.setdefault("BOOKING_SECRET_KEY", "benchmark-only")
        # Metrics as production writes them: every process into one shared directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir(home / "metrics"))
        os.environ.update(BOOKING_RATE_LIMIT_SUBMIT="1000000/second",
                          BOOKING_RATE_LIMIT_READ="1000000/second",
                          BOOKING_MAX_QUEUED_PER_CLIENT="1000000")
        get_settings.cache_clear()
        migrate()
        pg_port = int(os.environ["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
        return get_engine(), env, pg_port, home

    def __exit__(self, *exc):
        if self.stack:
            self.stack.stop()
        self.tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
