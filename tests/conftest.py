"""Shared test helpers: free loopback ports and generated audio."""

import socket

import pytest

from app.demo import tone_wav

__all__ = ["free_port", "tone_wav"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()
