"""The pure parts of bench/datapath.py: compressed-cluster entries, ranges, issue 10's targets."""

from __future__ import annotations

import struct

import pytest

from bench import datapath

pytestmark = pytest.mark.unit

MiB = 1 << 20


def _compressed(host: int, extra_sectors: int, cluster_bits: int) -> int:
    shift = 62 - (cluster_bits - 8)
    return 1 << 62 | extra_sectors << shift | host


@pytest.mark.parametrize(
    ("cluster_bits", "host", "extra_sectors", "length"),
    [
        (16, 0x30000, 0, 512),  # one sector, sector aligned
        (16, 0x30000 + 100, 2, 3 * 512 - 100),  # starts inside a sector, ends at its third
        (12, 0x5000 + 511, 7, 8 * 512 - 511),  # 4 KiB clusters: 4 bits of sector count
        (21, 0x200000, 4095, 4096 * 512),  # 2 MiB clusters: the largest count
    ],
)
def test_compressed_entries_follow_the_qcow2_layout(
    cluster_bits: int, host: int, extra_sectors: int, length: int
) -> None:
    table = [
        0,  # unallocated
        1 << 63 | 0x40000,  # a plain cluster (copied flag): not compressed
        1 << 63 | 1,  # a zero cluster
        _compressed(host, extra_sectors, cluster_bits),
    ]
    l2 = struct.pack(f">{len(table)}Q", *table)
    assert datapath.compressed_entries(l2, cluster_bits) == [(host, length)]


@pytest.mark.parametrize(
    ("values", "unit", "digits", "expected"),
    [
        ([2.6, 3.5, 3.1], " s", 2, "2.60-3.50 s"),
        ([1.004, 0.996], " s", 2, "1.00 s"),
        ([0, 0, 0], "", 0, "0"),
        ([7.04, 10.0], "x", 1, "7.0-10.0x"),
    ],
)
def test_span(values: list[float], unit: str, digits: int, expected: str) -> None:
    assert datapath.span(values, unit, digits) == expected


def _rows(
    *, compressed: float = 3.0, floor: float = 2.5, two_pass: float = 13.0, scratch: int = 0,
    rss: int = 57 * MiB, plain: float = 2.9, raw: float = 2.8,
) -> dict[str, dict]:  # fmt: skip
    return {
        datapath.RAW: {"populate": [raw, raw + 0.4]},
        datapath.PLAIN: {"populate": [plain + 0.3, plain]},
        datapath.COMPRESSED: {
            "populate": [compressed, compressed + 1],
            "floor": [floor + 0.2, floor],
            "two_pass": [two_pass, two_pass + 2],
            "rss": [rss - MiB, rss],
            "scratch": [scratch, scratch],
        },
    }


@pytest.mark.parametrize(
    ("rows", "missed"),
    [
        (_rows(), []),
        (_rows(compressed=3.3), ["floor", "two-pass"]),  # 1.32x the floor, 3.9x faster
        (_rows(scratch=4096), ["scratch"]),
        (_rows(rss=65 * MiB), ["RSS"]),
        (_rows(plain=3.1), ["10% of raw"]),  # 1.107x raw
        (_rows(raw=3.6, plain=3.6), ["today"]),
    ],
)
def test_judge_names_each_missed_target(rows: dict[str, dict], missed: list[str]) -> None:
    verdicts = datapath.judge(rows)
    assert len(verdicts) == 6
    failed = [what for what, _measured, met in verdicts if not met]
    assert len(failed) == len(missed)
    for what, word in zip(failed, missed, strict=True):
        assert word in what
