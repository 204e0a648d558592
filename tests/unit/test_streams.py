"""Stream helpers: read-ahead (peek, errors at their place), the replayed head, drain."""

from __future__ import annotations

import io

import pytest

from vmdiskimage.streams import ReadAhead, Replay, drain, read_full, read_head

pytestmark = pytest.mark.unit


class Trickle(io.RawIOBase):
    """Hands out at most ``step`` bytes a call, then raises ``error`` (if any) at the end."""

    def __init__(self, data: bytes, step: int, error: Exception | None = None) -> None:
        self._data = memoryview(data)
        self._step = step
        self._error = error
        self.closed_by_owner = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._step, len(self._data))
        if not n and self._error is not None:
            raise self._error
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n

    def close(self) -> None:
        self.closed_by_owner = True
        super().close()


@pytest.mark.parametrize("step", [1, 5, 32, 1 << 20])
def test_peek_leaves_the_bytes_to_read(step):
    data = bytes(range(256)) * 40
    source = Trickle(data, step)
    ahead = ReadAhead(source, chunk_size=64)
    assert ahead.peek(32) == data[:32]
    assert ahead.peek(32) == data[:32]
    assert read_head(ahead, 10) == data[:10]
    assert ahead.read(5) == data[10:15]
    out = bytearray(len(data))
    assert read_full(ahead, memoryview(out)[15:]) == len(data) - 15
    assert bytes(out[15:]) == data[15:]
    ahead.close()
    assert source.closed_by_owner


def test_peek_of_a_short_stream_is_short():
    ahead = ReadAhead(Trickle(b"abc", 1))
    assert ahead.peek(32) == b"abc"
    assert ahead.read() == b"abc"
    assert ahead.read() == b""
    ahead.close()


def test_read_ahead_raises_where_the_error_happened():
    ahead = ReadAhead(Trickle(b"x" * 100, 7, ValueError("at the end")), chunk_size=16)
    with pytest.raises(ValueError, match="at the end"):
        drain(ahead)
    ahead.close()


def test_replay_hands_out_the_head_first():
    stream = Replay(b"head", io.BytesIO(b"-body"))
    out = bytearray(3)
    assert stream.readinto(out) == 3 and out == b"hea"
    assert drain(stream) == 6
    assert stream.bytes_read == 9


def test_drain_tells_every_count():
    seen: list[int] = []
    assert drain(Trickle(b"y" * 10, 4), seen.append, chunk_size=3) == 10
    assert seen == [3, 3, 3, 1]
