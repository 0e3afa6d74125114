"""A janitor that stops dead at a named step of the move protocol, for the crash tests.

``python -m tests.e2e.archive_crash_child STEP N CUTOFF`` runs the janitor on the configured
database and store; the N-th time it reaches STEP it prints ``AT STEP`` and waits for the
test to SIGKILL it. Only the tests use this; production code has no such switch.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

from config.settings import get_settings
from services.archive.jobs.janitor import Janitor
from services.archive.jobs.lock import archive_lock
from services.archive.stores.factory import open_store
from services.container import container


def main() -> None:
    step, occurrence, cutoff = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    reached = 0

    def stop_at(name: str) -> None:
        nonlocal reached
        if name == step:
            reached += 1
            if reached == occurrence:
                print(f"AT {name}", flush=True)
                time.sleep(600)

    settings = get_settings()
    engine = container().engine
    with archive_lock(engine):
        Janitor(engine, open_store(settings), settings, on_step=stop_at).run(cutoff)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
