"""Adapters to the outside: Asterisk ARI, the database, media."""
