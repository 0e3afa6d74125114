"""Provider callbacks: who sent them, what they say, storing them, and applying them once."""
