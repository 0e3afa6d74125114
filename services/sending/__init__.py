"""Sending: the RFC's operations, the claim around a provider call, bulk sends, settling claims."""
