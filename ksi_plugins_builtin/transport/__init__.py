"""Transports that bring events into the host from outside."""
