"""The child process reads spike-sized files a window at a time: the same values as reading them whole."""

import numpy as np
import pytest

from phy_bcreason.live.recording import LiveMetricsError, WindowedArray


@pytest.mark.parametrize("shape, flat", [((10_001,), False), ((10_001, 1), True), ((10_001, 3, 4), False)])
def test_windowed_reads_equal_whole_reads(tmp_path, shape, flat):
    rng = np.random.default_rng(0)
    data = rng.normal(size=shape).astype(np.float32)
    path = tmp_path / "a.npy"
    np.save(path, data)
    whole = data.reshape(-1) if flat else data
    windowed = WindowedArray(path, flat=flat, window_bytes=1000)  # many windows
    assert len(windowed) == whole.shape[0] and windowed.shape == whole.shape
    for index in (rng.integers(0, len(whole), 500), np.sort(rng.integers(0, len(whole), 500)),
                  np.array([len(whole) - 1, 0, 5, 5]), np.array([], dtype=np.int64), np.array([-1, -2])):
        assert np.array_equal(windowed[index], whole[index])
    assert windowed.min() == whole.min() and windowed.max() == whole.max()
    with pytest.raises(IndexError):
        windowed[np.array([len(whole)])]


def test_missing_file_is_a_live_metrics_error(tmp_path):
    with pytest.raises(LiveMetricsError, match="file not found"):
        WindowedArray(tmp_path / "spike_times.npy")
