"""Service functions: each owns its transaction and speaks in domain terms."""
