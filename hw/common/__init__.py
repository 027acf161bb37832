"""Gateware building blocks used by both the core and the link, and synthesis hints."""
