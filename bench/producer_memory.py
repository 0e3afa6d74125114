"""Produce N recipients from a generated CSV stream and print the peak RSS in KiB."""

from __future__ import annotations

import io
import os
import resource
import sys
from collections.abc import Iterator

from broker.publisher import CeleryPublisher
from config.settings import get_settings
from models.session import build_engine, session_factory
from services.sending.batches import BatchProducer, read_csv
from workers.app import app


class GeneratedCsv(io.RawIOBase):
    """A CSV of ``count`` recipients, generated as it is read: nothing is held in memory."""

    def __init__(self, count: int) -> None:
        self._lines = self._generate(count)
        self._buffer = b""

    @staticmethod
    def _generate(count: int) -> Iterator[bytes]:
        yield b"customer_id,recipient,name\n"
        for i in range(count):
            yield f"C-{i},resident{i}@example.org,Resident {i}\n".encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        while len(self._buffer) < len(buffer):
            try:
                self._buffer += next(self._lines)
            except StopIteration:
                break
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def main() -> None:
    count = int(sys.argv[1])
    settings = get_settings()
    engine = build_engine(os.environ["BENCH_DATABASE_URL"], settings)
    producer = BatchProducer(session_factory(engine), CeleryPublisher(app), settings)
    stream = io.BufferedReader(GeneratedCsv(count))
    report = producer.run(f"memory-{count}", "email", "welcome", read_csv(stream))
    assert report.enqueued == count
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main()
