"""The archive's jobs: the janitor's run, restore, purge, sweep, audit and legal holds."""
