"""The HTTP API's callers: their keys, their tokens, their scopes and their request rate."""
