"""A Bloom filter of the customer ids in one archived file: which files a customer may be in.

No false negatives, about one false positive in a hundred; a positive is always confirmed by
reading the file. Stored as one byte for the number of hashes, then the bit array.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

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
        bits = bytearray((size + 7) // 8)
        total = len(bits) * 8
        # The positions _positions gives, stepped without a multiplication each: a file's
        # filter is built for tens of thousands of customers.
        for customer in distinct:
            digest = hashlib.blake2b(customer.encode(), digest_size=16).digest()
            position = int.from_bytes(digest[:8], "little") % total
            step = (int.from_bytes(digest[8:], "little") | 1) % total
            for _ in range(HASHES):
                bits[position >> 3] |= 1 << (position & 7)
                position += step
                if position >= total:
                    position -= total
        return cls(bits)

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
