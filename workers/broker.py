"""The Procfile's broker module (`dramatiq workers.broker workers.actors`): importing
it sets the process's broker (booking.broker) before any actor is declared."""

from booking.broker import broker

__all__ = ["broker"]
