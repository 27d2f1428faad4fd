"""Use cases: intake, queries, dialing, call sessions, media."""
