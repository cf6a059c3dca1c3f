"""Fixtures shared by every test folder. Keep this file small."""

from __future__ import annotations

import pytest

import ringkv


@pytest.fixture
def data_dir(tmp_path):
    """A fresh, not yet created data directory (as a str)."""
    return str(tmp_path / "data")


@pytest.fixture
def db(data_dir):
    """An embedded database in ``data_dir``, closed after the test."""
    database = ringkv.open(data_dir)
    yield database
    database.close()
