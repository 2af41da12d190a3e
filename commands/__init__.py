"""Command models and the handlers that decide them."""
