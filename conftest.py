"""Shared pytest setup for the whole repository: real gearmand fixtures."""

pytest_plugins = ["bridge.testing.pytest_plugin"]
