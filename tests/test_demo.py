"""`phy-bcreason demo` leaves nothing open in its temporary folder when it removes it (Windows cannot delete an
open file: WinError 32)."""

import logging
import os
import tempfile
from pathlib import Path

import psutil

from phy_bcreason import demo


def held_in(folder: Path) -> list[str]:
    """Files of ``folder`` this process holds: open, memory-mapped, or written by a log handler."""
    folder = folder.resolve()
    me = psutil.Process()
    paths = [f.path for f in me.open_files()]
    try:
        paths += [m.path for m in me.memory_maps()]
    except (psutil.AccessDenied, NotImplementedError, AttributeError):
        pass
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        paths += [h.baseFilename for h in getattr(logger, "handlers", []) if hasattr(h, "baseFilename")]
    return sorted({p for p in paths if p and os.path.isabs(p) and Path(p).resolve().is_relative_to(folder)})


def test_demo_releases_its_folder_before_removing_it(qapp, tmp_path, monkeypatch):
    seen = {}

    class Checked(tempfile.TemporaryDirectory):
        def cleanup(self):
            seen["held"] = held_in(Path(self.name))
            seen["log"] = (Path(self.name) / "kilosort" / "phy.log").is_file()
            super().cleanup()

    monkeypatch.setattr(demo.tempfile, "TemporaryDirectory", Checked)
    assert demo.run_demo(screenshot=tmp_path / "demo.png") == 0
    assert (tmp_path / "demo.png").is_file()
    assert seen["log"]   # Phy did write its log there
    assert seen["held"] == []
