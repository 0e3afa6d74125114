"""The interactions ledger: the one transition table, the one place that writes it, its timeline."""
