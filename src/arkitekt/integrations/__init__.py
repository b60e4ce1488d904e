"""Wiring an app into larger applications (web frameworks, ...)."""
