"""Fixtures for launcher tests: ``env`` (tests/functional/conftest.py) and
the helpers in helpers.py."""
