"""Prometheus metrics, summed across processes (issue 13: being built)."""

import dramatiq


class WorkerMetrics(dramatiq.Middleware):
    """Dramatiq's own metrics, written where the web's /metrics reads them."""
