"""Counters and timings the service keeps for Prometheus."""
