"""HTTP API: routes, request models and the response envelope."""
