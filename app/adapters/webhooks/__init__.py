"""Webhooks over HTTP: signing and sending."""
