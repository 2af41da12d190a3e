"""Aggregates, events and rules of qledger. Pure Python: no I/O, no framework."""
