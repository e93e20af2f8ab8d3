"""``.streamlit/config.toml``: the server listens on this machine only and caps uploads."""
from __future__ import annotations

import tomllib
from pathlib import Path

from brainit_core.data.uploads import MAX_UPLOAD_MB

CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"


def test_server_binds_to_localhost_and_limits_uploads():
    """Probe: the server listened on every interface and took Streamlit's default 200 MB uploads."""
    server = tomllib.loads(CONFIG.read_text())["server"]
    assert server["address"] == "localhost"
    assert server["maxUploadSize"] == MAX_UPLOAD_MB
    assert server["headless"] is True


def test_docs_say_how_to_open_the_server():
    text = (CONFIG.parents[1] / "docs" / "app.md").read_text()
    assert "--server.address 0.0.0.0" in text and "STREAMLIT_SERVER_ADDRESS" in text
    assert f"{MAX_UPLOAD_MB} MB" in text
