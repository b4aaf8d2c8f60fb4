"""examples/pair_coding runs as documented: the refused write, the message, the release, the
second edit, all in the fleet's log in that order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import anyio
import pytest

from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import open_store

EXAMPLE = Path(__file__).parent.parent / "examples" / "pair_coding" / "pair_coding.py"

pytestmark = pytest.mark.slow


def test_pair_coding_example(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("pair_coding", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = anyio.run(module.pair, tmp_path)
    assert lines[2].startswith("Bob: write refused: 'src/app.py' is reserved by Ann")
    assert "Ann: read from Bob: May I edit `src/app.py` after you?" in lines
    assert lines[-2:] == ["Bob: reserved and edited src/app.py", "Bob: released everything"]
    app = (tmp_path / "repo" / "src" / "app.py").read_text()
    assert app == "def main():\n    print('hello')\n    print('bye')\n"
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        kinds = [
            (row.type, row.data.get("callsign") or row.data.get("sender"))
            for row in store.iter_rows()
            if row.type in ("reservation_granted", "message_sent", "reservation_released")
        ]
        assert kinds == [
            ("reservation_granted", "Ann"),
            ("message_sent", "Bob"),
            ("reservation_released", None),
            ("message_sent", "Ann"),
            ("reservation_granted", "Bob"),
            ("reservation_released", None),
        ]
        assert verify(store) == []
