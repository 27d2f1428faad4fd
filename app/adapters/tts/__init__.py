"""Text-to-speech adapters: several engines behind one protocol, tried as an ordered chain.

Import engines through :mod:`app.adapters.tts.engine` (``build_engines``, ``SpeechChain``);
the per-engine modules import their third-party libraries only when used.
"""
