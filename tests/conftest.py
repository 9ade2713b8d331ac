"""Shared fixtures: every test gets its own state directory (ENCORE_HOME)."""

from __future__ import annotations

import pytest

from encore.core.config import load_config


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCORE_HOME", str(tmp_path / "encore"))
    return load_config()
