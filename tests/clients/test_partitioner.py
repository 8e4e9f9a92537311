"""The test-side murmur2 against Kafka's published vectors and against the Java client itself."""

import pytest

from partitioner import default_partition, murmur2
from records import sample_keys

# From Kafka's UtilsTest.testMurmur2 and other published checks of Utils.murmur2.
KNOWN = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"1", -1993445489),
    (b"12", 126087238),
    (b"123", -267702483),
    (b"1234", -1614185708),
    (b"12345", -1188365604),
]


@pytest.mark.parametrize("key,expected", KNOWN)
def test_murmur2_known_vectors(key, expected):
    assert murmur2(key) == expected


def test_default_partition_masks_sign_bit():
    # -973932308 & 0x7fffffff = 1173551340
    assert default_partition(b"21", 7) == 1173551340 % 7
    assert all(0 <= default_partition(k, 3) < 3 for k in sample_keys())


def test_murmur2_matches_java_client(java_tool):
    keys = sample_keys() + [b"", bytes(range(256))]
    out = java_tool(["murmur2"] + [k.hex() for k in keys])
    assert out["hashes"] == [murmur2(k) for k in keys]
