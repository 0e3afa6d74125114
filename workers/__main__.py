"""``python -m workers`` runs the ``interactions`` command line."""

from workers.cli import main

main()
