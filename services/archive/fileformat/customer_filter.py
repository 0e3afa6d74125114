"""A Bloom filter of the customer ids in one archived file: which files a customer may be in.

No false negatives, about one false positive in a hundred; a positive is always confirmed by
reading the file. Stored as one byte for the number of hashes, then the bit array.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy

HASHES = 7
BITS_PER_ITEM = 9.6  # about 1% false positives with 7 hashes
MIN_BITS = 64


def _positions(item: str, bits: int, hashes: int) -> list[int]:
    digest = hashlib.blake2b(item.encode(), digest_size=16).digest()
    first = int.from_bytes(digest[:8], "little")
    step = int.from_bytes(digest[8:], "little") | 1
    return [(first + i * step) % bits for i in range(hashes)]


class CustomerFilter:
    """A set of customer ids that answers 'maybe here' or 'certainly not here'."""

    def __init__(self, bits: bytearray, hashes: int = HASHES) -> None:
        self._bits = bits
        self._size = len(bits) * 8
        self._hashes = hashes

    @classmethod
    def of(cls, customers: Iterable[str]) -> CustomerFilter:
        """A filter sized for, and holding, ``customers``."""
        distinct = set(customers)
        size = max(MIN_BITS, math.ceil(len(distinct) * BITS_PER_ITEM))
        total = (size + 7) // 8 * 8
        # The positions _positions gives, for every customer at once: a file's filter holds
        # tens of thousands of customers, too many to set bit by bit in Python.
        # (first + i * step) % total == (first % total + i * (step % total)) % total, and
        # with both terms reduced the sum stays far below 2**64.
        digests = b"".join(
            hashlib.blake2b(customer.encode(), digest_size=16).digest() for customer in distinct
        )
        halves = numpy.frombuffer(digests, dtype="<u8").reshape(-1, 2)
        first = halves[:, 0] % numpy.uint64(total)
        step = (halves[:, 1] | numpy.uint64(1)) % numpy.uint64(total)
        rounds = numpy.arange(HASHES, dtype=numpy.uint64)
        positions = (first[:, None] + rounds[None, :] * step[:, None]) % numpy.uint64(total)
        flags = numpy.zeros(total, dtype=numpy.bool_)
        flags[positions.ravel()] = True
        return cls(bytearray(numpy.packbits(flags, bitorder="little").tobytes()))

    def might_contain(self, customer: str) -> bool:
        """False when ``customer`` is certainly not in the file."""
        return all(
            self._bits[p >> 3] & (1 << (p & 7))
            for p in _positions(customer, self._size, self._hashes)
        )

    def to_bytes(self) -> bytes:
        """The filter as stored in a manifest row."""
        return bytes([self._hashes]) + bytes(self._bits)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerFilter:
        """A filter read back from a manifest row."""
        return cls(bytearray(raw[1:]), raw[0])
