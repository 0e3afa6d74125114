"""Development tools the demo, tests and benchmarks share; never part of a production install."""
