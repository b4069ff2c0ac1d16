"""Errors of the service layer that no narrower module owns."""

from __future__ import annotations

__all__ = ["InvalidRequest"]


class InvalidRequest(Exception):
    """The request is well formed but breaks a rule of kodex or the policy; the message says which and what to do."""
