"""Fixtures of the app tests: ``app_env`` points the app at the tiny twin, run and generators of
``tests/conftest.py`` (``app_data``, built once per test session, about 5 s on 2 cores) through
``BRAINIT_APP_DATA`` / ``BRAINIT_APP_RUN`` / ``BRAINIT_APP_GENERATORS``; ``BRAINIT_DATA`` goes to the
same temporary directory, so the app's discovery and its reconstruction cache never touch ``~/.brainit``.
"""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def app_env(app_data):
    """Point the app (in this process and in child processes) at the tiny configuration."""
    old = {k: os.environ.get(k) for k in app_data.env()}
    os.environ.update(app_data.env())
    yield app_data
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
