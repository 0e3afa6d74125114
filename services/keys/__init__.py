"""The key ring's upkeep: re-sealing personal data under the active key."""
