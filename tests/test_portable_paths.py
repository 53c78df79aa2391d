"""Paths written on another machine (Bombcell's raw_data_file, params.py's dat_path) are found here by file name,
whichever OS wrote them; when they are not, the reason names every place tried."""

import numpy as np

from phy_bcreason.io.kilosort import dat_paths, find_raw_file, foreign_name
from phy_bcreason.live.recording import open_raw


def test_file_names_of_paths_from_either_os():
    assert foreign_name(r"D:\sorting\mouse1\recording.bin") == "recording.bin"
    assert foreign_name(r"\\server\share\recording.bin") == "recording.bin"
    assert foreign_name("/mnt/server/recording.bin") == "recording.bin"
    assert foreign_name("recording.bin") == "recording.bin"


def test_dat_path_is_read_without_running_params_py(tmp_path):
    (tmp_path / "params.py").write_text("import sys\ndat_path = [r'D:\\x\\a.bin', 'b.bin']\nn_channels_dat = 4\n",
                                        encoding="utf-8")
    assert dat_paths(tmp_path) == [r"D:\x\a.bin", "b.bin"]
    (tmp_path / "params.py").write_text("dat_path = compute()\n", encoding="utf-8")
    assert dat_paths(tmp_path) == []


def test_raw_file_found_beside_a_windows_dat_path_folder_that_exists_relatively(tmp_path):
    ks = tmp_path / "ks"
    ks.mkdir()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "rec.bin").write_bytes(np.zeros(8, "int16").tobytes())
    (ks / "params.py").write_text("dat_path = r'..\\raw\\rec.bin'\n", encoding="utf-8")
    found, tried = find_raw_file(ks, r"E:\data\rec.bin")
    assert found == tmp_path / "raw" / "rec.bin"
    assert tried == [r"E:\data\rec.bin", str(ks / "rec.bin"), str(tmp_path / "raw" / "rec.bin")]


def test_a_raw_file_nowhere_says_where_it_was_looked_for(tmp_path):
    (tmp_path / "params.py").write_text("dat_path = 'rec.bin'\n", encoding="utf-8")
    notes = []
    raw, why = open_raw(tmp_path, {"raw_data_file": r"D:\sorting\rec.bin", "nChannels": 4}, notes)
    assert raw is None and notes == []
    assert r"D:\sorting\rec.bin" in why and str(tmp_path / "rec.bin") in why
