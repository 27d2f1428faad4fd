"""Media adapters: fetching remote audio and converting it to what Asterisk can play."""
