"""Asterisk's channel event log (CEL), read for calls that ended while nobody listened."""
