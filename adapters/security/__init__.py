"""Credential mechanics: signed tokens, password hashes, API keys, login throttling."""
