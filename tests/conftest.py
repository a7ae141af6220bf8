import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its cache (synthetic models, the run store) under a temp dir, never ~/.cache."""
    if "FLUXPLAN_CACHE" not in os.environ or os.environ.get("FLUXPLAN_TEST_SHARED_CACHE") != "1":
        monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path_factory.getbasetemp() / "fluxplan-cache"))
