"""Asterisk Manager Interface: read-only monitoring."""
