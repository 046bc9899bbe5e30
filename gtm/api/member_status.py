"""Moved to `gtm.client.member_status`; this name stays until `chaos.drills.samples` imports
it from there (that file is being changed in another work in progress)."""

from gtm.client.member_status import MemberStatus, StatusError, read_status

__all__ = ["MemberStatus", "StatusError", "read_status"]
