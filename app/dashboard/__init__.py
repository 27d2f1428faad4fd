"""The dashboard at `/ui`: static files served by the service, talking to its own API."""
