"""Thin asyncio client for the Asterisk REST Interface."""
