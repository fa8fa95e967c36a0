"""Worker liveness heartbeats in Redis (issue 13: being built)."""

import dramatiq


class Heartbeat(dramatiq.Middleware):
    """Each worker process heartbeats while it runs."""
