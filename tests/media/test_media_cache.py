"""MediaCache (LRU eviction by bytes, protection, several processes) and MediaLibrary on it."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import stat
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.adapters.media.audio_conversion import ConvertedAudio, convert_for_asterisk
from app.adapters.media.fetcher import MediaFetcher
from app.adapters.media.media_cache import MediaCache
from app.services import media_library
from app.services.media_library import MediaLibrary

FILE_BYTES = 100


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def names_in(cache: MediaCache) -> set[str]:
    by_key = {key(n): n for n in "abcdefghij"}
    return {by_key[p.stem] for p in cache.directory.glob("*.wav") if p.stem in by_key}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_cache(tmp_path: Path, clock: Clock, *, files: int, protect: float = 0) -> MediaCache:
    return MediaCache(tmp_path / "cache", FILE_BYTES * files, protect_seconds=protect, clock=clock)


def store_at(cache: MediaCache, clock: Clock, when: float, name: str) -> Path:
    clock.now = 1_000_000.0 + when
    return cache.store(key(name), name.encode() * FILE_BYTES)


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "A" * 64, "g" * 64, "0" * 15, "0" * 129, "../" + "0" * 16, "0" * 16 + "\n"],
)
def test_malformed_keys_are_refused(tmp_path: Path, bad: str) -> None:
    cache = MediaCache(tmp_path, 1000)
    with pytest.raises(ValueError, match="hex"):
        cache.path_for(bad)


def test_store_then_lookup(tmp_path: Path, clock: Clock) -> None:
    cache = make_cache(tmp_path, clock, files=5)
    assert cache.lookup(key("a")) is None

    path = store_at(cache, clock, 0, "a")
    clock.now += 60
    found = cache.lookup(key("a"))

    assert found == path == tmp_path / "cache" / f"{key('a')}.wav"
    assert path.read_bytes() == b"a" * FILE_BYTES
    assert path.stat().st_mtime == clock.now  # marked used
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp, no lock


def test_eviction_is_least_recently_used_and_keeps_the_total_bounded(
    tmp_path: Path, clock: Clock
) -> None:
    cache = make_cache(tmp_path, clock, files=3)
    for when, name in enumerate("abc"):
        store_at(cache, clock, when, name)
    clock.now += 1
    assert cache.lookup(key("a")) is not None  # a is now the most recently used

    store_at(cache, clock, 10, "d")
    assert names_in(cache) == {"a", "c", "d"}  # b was least recently used
    store_at(cache, clock, 11, "e")
    assert names_in(cache) == {"a", "d", "e"}
    store_at(cache, clock, 12, "f")
    assert names_in(cache) == {"d", "e", "f"}
    assert cache.total_bytes() <= cache.max_bytes


def test_recently_used_files_are_protected(tmp_path: Path, clock: Clock) -> None:
    cache = make_cache(tmp_path, clock, files=3, protect=10)
    for when, name in enumerate("abcd"):
        store_at(cache, clock, when, name)

    # All four were used within 10 s: over the bound, but nothing may go yet.
    assert names_in(cache) == {"a", "b", "c", "d"}

    store_at(cache, clock, 11.5, "e")  # a (0 s) and b (1 s) are now older than 10 s
    assert names_in(cache) == {"c", "d", "e"}
    assert cache.total_bytes() <= cache.max_bytes


def test_the_file_just_stored_is_never_evicted(tmp_path: Path, clock: Clock) -> None:
    cache = MediaCache(tmp_path, FILE_BYTES // 2, protect_seconds=0, clock=clock)

    store_at(cache, clock, 0, "a")
    assert names_in(cache) == {"a"}
    store_at(cache, clock, 1, "b")
    assert names_in(cache) == {"b"}


def test_foreign_files_are_neither_counted_nor_deleted(tmp_path: Path, clock: Clock) -> None:
    cache = make_cache(tmp_path, clock, files=1)
    cache.directory.mkdir()
    foreign = ["README", "notes.wav", "ABCDEF0123456789.wav", f"{key('z')}.mp3"]
    for name in foreign:
        (cache.directory / name).write_bytes(b"x" * 10 * FILE_BYTES)
    fresh_temp = cache.directory / f".{key('y')}.wav.abc123.tmp"
    stale_temp = cache.directory / f".{key('x')}.wav.def456.tmp"
    fresh_temp.write_bytes(b"half")
    stale_temp.write_bytes(b"crashed")
    two_hours_ago = time.time() - 7200
    os.utime(stale_temp, (two_hours_ago, two_hours_ago))

    store_at(cache, clock, 0, "a")
    store_at(cache, clock, 1, "b")

    assert names_in(cache) == {"b"}
    assert cache.total_bytes() == FILE_BYTES
    remaining = {p.name for p in cache.directory.iterdir()}
    assert set(foreign) <= remaining
    assert fresh_temp.name in remaining  # may belong to a writer still at work
    assert stale_temp.name not in remaining  # left by a crash: cleaned up


def test_a_file_removed_under_the_cache_is_just_missing(tmp_path: Path, clock: Clock) -> None:
    cache = make_cache(tmp_path, clock, files=3)
    store_at(cache, clock, 0, "a").unlink()

    assert cache.lookup(key("a")) is None
    assert cache.evict() == []


# --- Several processes -----------------------------------------------------------------

PROCESS_FILES = 50
PROCESS_FILE_BYTES = 1000
PROCESS_MAX_BYTES = 20 * PROCESS_FILE_BYTES


def process_data(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest() * (PROCESS_FILE_BYTES // 32) + b"-" * (
        PROCESS_FILE_BYTES % 32
    )


def store_many(directory: str, worker: int, barrier: Barrier) -> None:
    # protect_seconds=0 so the processes really do evict each other's files.
    cache = MediaCache(Path(directory), PROCESS_MAX_BYTES, protect_seconds=0)
    barrier.wait()
    for i in range(PROCESS_FILES):
        # Every fifth name is shared, so both processes also write the same file at once.
        name = f"shared-{i}" if i % 5 == 0 else f"worker{worker}-{i}"
        cache.store(key(name), process_data(name))


@pytest.mark.timeout(60)
def test_two_processes_storing_at_once_leave_a_consistent_folder(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=store_many, args=(str(tmp_path), worker, barrier)) for worker in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=50)
    assert [process.exitcode for process in workers] == [0, 0]

    expected = {
        key(name): process_data(name)
        for worker in (1, 2)
        for i in range(PROCESS_FILES)
        for name in [f"shared-{i}" if i % 5 == 0 else f"worker{worker}-{i}"]
    }
    files = {p.name for p in tmp_path.iterdir()}
    wavs = {name for name in files if name.endswith(".wav")}
    assert files - wavs == {".lock"}  # no temp files left behind
    assert wavs
    for name in wavs:
        # Every survivor is complete and holds exactly what its key stands for.
        assert (tmp_path / name).read_bytes() == expected[name.removesuffix(".wav")]
    assert MediaCache(tmp_path, PROCESS_MAX_BYTES).total_bytes() <= PROCESS_MAX_BYTES


# --- MediaLibrary on the cache ---------------------------------------------------------

ASTERISK_SOUNDS = "/var/lib/asterisk/sounds/voxcast"


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class UnusedFetcher(MediaFetcher):
    def __init__(self) -> None:
        pass

    async def fetch(self, url: str) -> bytes:
        raise AssertionError("no fetch expected")


def library(sound_dir: Path, **kwargs: int) -> MediaLibrary:
    return MediaLibrary(
        UnusedFetcher(), sound_dir, lambda p: f"{ASTERISK_SOUNDS}/{p.name}", **kwargs
    )


def wav_stems(directory: Path) -> set[str]:
    # Sync helper: a directory listing in a test is not worth a thread hop.
    return {p.stem for p in directory.glob("*.wav")}


def count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counting(data: bytes, **limits: float) -> ConvertedAudio:
        calls.append(len(data))
        return convert_for_asterisk(data, **limits)

    monkeypatch.setattr(media_library, "convert_for_asterisk", counting)
    return calls


async def test_store_converted_converts_once_and_maps_the_sound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions = count_conversions(monkeypatch)
    tts_key = key("espeak|en-gb|en|Hello")

    first = await library(tmp_path).store_converted(tts_key, tone(0.5))
    second = await library(tmp_path).store_converted(tts_key, b"not even audio")

    assert first == second
    assert first.sound == f"sound:{ASTERISK_SOUNDS}/{tts_key}"
    assert first.content_hash == tts_key
    assert first.duration_seconds == pytest.approx(0.5, abs=0.01)
    assert len(conversions) == 1
    info = sf.info(str(tmp_path / f"{tts_key}.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")


async def test_store_converted_remakes_a_file_deleted_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions = count_conversions(monkeypatch)
    lib = library(tmp_path)
    prepared = await lib.store_converted(key("a"), tone(0.25))
    (tmp_path / f"{key('a')}.wav").unlink()  # e.g. evicted by another process

    assert await lib.store_converted(key("a"), tone(0.25)) == prepared
    assert len(conversions) == 2
    assert (tmp_path / f"{key('a')}.wav").exists()


async def test_store_converted_refuses_a_malformed_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hex"):
        await library(tmp_path).store_converted("../../etc/passwd", tone(0.1))


async def test_library_cache_is_bounded_but_spares_recent_files(tmp_path: Path) -> None:
    lib = library(tmp_path, cache_max_bytes=6000)  # room for one 0.25 s clip (~4 kB)
    await lib.store_converted(key("a"), tone(0.25))
    await lib.store_converted(key("b"), tone(0.25))
    # Both were used just now (queued calls may need them), so both stay.
    assert wav_stems(tmp_path) == {key("a"), key("b")}

    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / f"{key('a')}.wav", (two_hours_ago, two_hours_ago))
    await lib.store_converted(key("c"), tone(0.25))

    assert wav_stems(tmp_path) == {key("b"), key("c")}


async def test_prepare_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions = count_conversions(monkeypatch)
    lib = library(tmp_path)

    half = await lib.prepare_silence(0.5)
    again = await lib.prepare_silence(0.50001)  # same number of 8 kHz samples
    two = await lib.prepare_silence(2)

    assert half == again != two
    assert (half.duration_seconds, two.duration_seconds) == (0.5, 2.0)
    assert half.sound == f"sound:{ASTERISK_SOUNDS}/{half.content_hash}"
    samples, rate = sf.read(str(tmp_path / f"{half.content_hash}.wav"), dtype="int16")
    assert rate == 8000 and samples.shape == (4000,) and not samples.any()
    assert sf.info(str(tmp_path / f"{two.content_hash}.wav")).subtype == "PCM_16"
    assert conversions == []  # already in the target format


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 3601])
async def test_prepare_silence_refuses_bad_durations(tmp_path: Path, seconds: float) -> None:
    with pytest.raises(ValueError, match="silence"):
        await library(tmp_path).prepare_silence(seconds)
