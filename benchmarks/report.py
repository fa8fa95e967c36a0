"""The benchmark's table, ratios against baselines of the same run, and chart."""

from __future__ import annotations

from pathlib import Path

SPIKE_COLUMNS = {  # the burst has figures of its own (benchmarks/spike.py)
    "pipeline": ("accept_p50_ms", "accept_p99_ms", "drain_s", "decided_per_s", "mean_batch",
                 "fcfs_violations", "errors", "double_bookings"),
    "sync-locked": ("p50_ms", "p99_ms", "decided_per_s", "errors", "double_bookings"),
}
SEATS_COLUMNS = ("succeeded", "over_capacity", "seats_taken", "full_sessions", "seats_taken_drift",
                 "fcfs_violations", "double_bookings", "outcomes")
COLUMNS = ("accepted_per_s", "decided_per_s", "p50_ms", "p95_ms", "p99_ms", "double_bookings", "rss_mb",
           "cpu_ms")  # cpu_ms: CPU per decided booking, all processes (cpu_ms_per_decision in the JSON)


def ratio(report: dict, scenario: str, system: str, other_scenario: str, other: str) -> float | None:
    try:
        mine = report["scenarios"][scenario][system]["decided_per_s"]
        theirs = report["scenarios"][other_scenario][other]["decided_per_s"]
        return round(mine / theirs, 2)
    except (KeyError, ZeroDivisionError, TypeError):
        return None


def goals(report: dict) -> list[tuple[str, object, str]]:
    scenarios = report["scenarios"]
    uniform = scenarios.get("uniform", {}).get("pipeline", {})
    doubles = [figures.get("double_bookings") for s in scenarios.values()
               for system, figures in s.items() if system.startswith("pipeline")]
    pipeline = "pipeline"
    return [
        ("pipeline uniform / ceiling uniform",
         ratio(report, "uniform", pipeline, "uniform", "ceiling"), ">= 0.5"),
        ("pipeline hot / pipeline uniform", ratio(report, "hot", pipeline, "uniform", pipeline), ">= 0.8"),
        ("pipeline hot / sync-locked hot", ratio(report, "hot", pipeline, "hot", "sync-locked"), ">= 1.5"),
        ("pipeline p99 at half load (ms)", uniform.get("p99_half_load_ms"), "<= 100"),
        ("pipeline scale / pipeline uniform",
         ratio(report, "scale", pipeline, "uniform", pipeline), ">= 0.8 (within 1.25x)"),
        ("pipeline 2 workers / 1 worker",
         ratio(report, "uniform-2w", pipeline, "uniform-1w", pipeline), "(scaling)"),
        ("pipeline-prefer / pipeline, uniform",
         ratio(report, "uniform", "pipeline-prefer", "uniform", pipeline), "(Prefer: wait)"),
        ("pipeline-prefer hot / sync-locked hot",
         ratio(report, "hot", "pipeline-prefer", "hot", "sync-locked"), ">= 1.5"),
        ("pipeline spike / sync-locked spike",
         ratio(report, "spike", pipeline, "spike", "sync-locked"), "(burst: decided/s)"),
        ("sync-locked spike p99 / accept p99", _spike_p99_ratio(scenarios.get("spike", {})), "(burst)"),
        ("pipeline spike FCFS violations",
         scenarios.get("spike", {}).get(pipeline, {}).get("fcfs_violations"), "== 0"),
        ("pipeline waiters healthz p99 (ms)",
         scenarios.get("waiters", {}).get(pipeline, {}).get("healthz_p99_ms"), "< 100"),
        ("pipeline waiters submit p99 (ms)",
         scenarios.get("waiters", {}).get(pipeline, {}).get("submit_p99_ms"), "< 100"),
        ("pipeline seats: sessions over capacity",
         scenarios.get("seats", {}).get(pipeline, {}).get("over_capacity"), "== 0"),
        ("pipeline seats: seats booked",
         scenarios.get("seats", {}).get(pipeline, {}).get("succeeded"), f"== {_seats_bookable(report)}"),
        ("pipeline seats FCFS violations",
         scenarios.get("seats", {}).get(pipeline, {}).get("fcfs_violations"), "== 0"),
        ("pipeline double bookings (all)", sum(d or 0 for d in doubles), "== 0"),
    ]


def _seats_bookable(report: dict) -> str:
    seats = report.get("settings", {}).get("seats", {})
    return f"{seats['sessions'] * seats['capacity']:,}" if seats else "sessions x capacity"


def _spike_p99_ratio(spike: dict) -> float | None:
    try:
        return round(spike["sync-locked"]["p99_ms"] / spike["pipeline"]["accept_p99_ms"], 2)
    except (KeyError, ZeroDivisionError, TypeError):
        return None


def print_table(report: dict) -> None:
    print()
    print(f"{'scenario':<12} {'system':<12} " + " ".join(f"{c:>15}" for c in COLUMNS))
    for scenario, systems in report["scenarios"].items():
        if scenario in ("spike", "waiters"):
            continue
        for system, figures in systems.items():
            cpu = (figures.get("cpu_ms_per_decision") or {}).get("total")
            cells = " ".join(f"{_cell(cpu if c == 'cpu_ms' else figures.get(c)):>15}" for c in COLUMNS)
            print(f"{scenario:<12} {system:<12} {cells}")
    _print_spike(report["scenarios"].get("spike", {}))
    seats = report["scenarios"].get("seats", {}).get("pipeline")
    if seats:
        print("\nseats (more customers than seats, one per create; over_capacity: sessions whose live "
              "bookings exceed their capacity, counted in SQL):\n  "
              + "  ".join(f"{k} {_cell(seats.get(k))}" for k in SEATS_COLUMNS))
    waiters = report["scenarios"].get("waiters", {}).get("pipeline")
    if waiters:
        print("\nwaiters (concurrent long-polls; p99 of /healthz and submits while they wait, and of "
              "decision -> answer):\n  " + "  ".join(f"{k} {_cell(v)}" for k, v in waiters.items()))
    print("\nGoals (ratios within this run):")
    for name, value, target in goals(report):
        print(f"  {name:<38} {_cell(value):>10}   target {target}")
    print()


def _print_spike(spike: dict) -> None:
    if not spike:
        return
    print("\nspike (burst; accept_* and drain_s for the pipeline, which answers 202 and decides later):")
    for system, columns in SPIKE_COLUMNS.items():
        if system in spike:
            print(f"  {system:<12} " + "  ".join(f"{c} {_cell(spike[system].get(c))}" for c in columns))


def _cell(value) -> str:
    return "-" if value is None else str(value)


def write_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in report["scenarios"] if s != "waiters"]  # no throughput figures
    systems = ["ceiling", "sync-naive", "sync-locked", "pipeline", "pipeline-prefer"]
    fig, (throughput, latency, cpu) = plt.subplots(1, 3, figsize=(20, 5))
    width = 0.16
    for offset, system in enumerate(systems):
        values = [report["scenarios"][s].get(system, {}).get("decided_per_s") or 0 for s in scenarios]
        throughput.bar([i + offset * width for i in range(len(scenarios))], values, width, label=system)
    throughput.set_xticks([i + 2 * width for i in range(len(scenarios))], scenarios, rotation=20)
    throughput.set_ylabel("decided per second")
    throughput.set_title("Throughput by system and scenario")
    throughput.legend()
    closed = [s for s in scenarios if s != "spike"]  # the burst's pipeline has accept latency only
    for offset, pct in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        values = [report["scenarios"][s].get("pipeline", {}).get(pct) or 0 for s in closed]
        latency.bar([i + offset * 0.25 for i in range(len(closed))], values, 0.25, label=pct)
    latency.set_xticks([i + 0.25 for i in range(len(closed))], closed, rotation=20)
    latency.set_ylabel("submit -> decided (ms)")
    latency.set_title("Pipeline latency percentiles (closed loop)")
    latency.legend()
    _cpu_panel(cpu, report, systems)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _cpu_panel(axes, report: dict, systems: list[str]) -> None:
    """CPU per decided booking in `uniform`, stacked by role: on a machine whose cores
    everything shares, this is what throughput is divided by."""
    uniform = report["scenarios"].get("uniform", {})
    shown = [s for s in systems if "cpu_ms_per_decision" in uniform.get(s, {})]
    bottoms = [0.0] * len(shown)
    for role in ("web", "worker", "postgres", "redis", "client", "other"):
        values = [uniform[s]["cpu_ms_per_decision"].get(role, 0.0) for s in shown]
        axes.bar(shown, values, bottom=bottoms, label=role)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    axes.set_ylabel("CPU ms per decided booking")
    axes.set_title("Where the CPU goes (uniform)")
    axes.tick_params(axis="x", rotation=20)
    axes.legend()
