"""Test support: ports, audio, processes, the service harness, SIPp traces, RTP, a fake ARI.

Only tests and benchmarks import this package; the service (app/) never does.
"""
