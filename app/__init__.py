"""Voxcast: voice broadcast over SIP through Asterisk ARI."""
