"""Run the stub provider: ``python -m devtools.stub --port 6011``."""

from devtools.stub.cli import main

main()
