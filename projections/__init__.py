"""Projectors (event in, rows out) and the query functions that read their tables."""
