"""Shared fixtures: realistic Kilosort folders labelled by a real Bombcell run.

The datasets are built once per test session (``tests/dataset_builder.py``: SpikeInterface
simulation + export, then Bombcell with its default parameters). Treat them as read-only:
copy one with ``tests.dataset_builder.copy_dataset`` (or the ``ks_dataset_copy`` fixture)
before changing anything in it. Phy writes ``.phy/`` and ``phy.log`` into the folder it
opens, so open copies in Phy.

- ``ks_dataset``: default dataset (seed 0, no raw data), Bombcell defaults. Unit i is
  ``dataset_builder.UNIT_SPECS[i]``; ``dataset_builder.expected_labels()`` gives the labels.
- ``ks_dataset_raw``: the same units with the raw int16 recording, Bombcell with
  extractRaw on (``expected_labels(raw=True)``: the small unit becomes MUA).
- ``bombcell_rerun(ks_dir, overrides, name)``: Bombcell again with parameter overrides into
  ``ks_dir / name``, once per session for a given (ks_dir, name).
- ``si_dataset(variant="default", layout="export") -> si_builder.SIDataset``: the same units
  labelled by Bombcell through SpikeInterface (``bombcell.run_bombcell_qc``), built once per
  session per (variant, layout); see ``tests/si_builder.py``. Read-only: ``si_dataset_copy``.
- ``si_dataset_copy(variant="default", layout="export", dst=None) -> SIDataset``: a private
  copy (phy folder and results), under the test's tmp_path unless ``dst`` is given.
"""

from __future__ import annotations

import os

# Before anything imports Qt: Qt's offscreen platform, so that the test command is plain `python -m pytest -q`
# in every shell (bash, PowerShell, cmd.exe) and on every OS, with no window shown.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import contextlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # `tests.dataset_builder` must be importable however pytest was started
    sys.path.insert(0, str(REPO))

os.environ.setdefault("MPLBACKEND", "Agg")

from tests import dataset_builder as dsb  # noqa: E402
from tests import si_builder  # noqa: E402


@pytest.fixture(scope="session")
def ks_dataset(tmp_path_factory) -> Path:
    """Default dataset: Kilosort folder (no raw data) with Bombcell's default run in ./bombcell."""
    return dsb.build_dataset(tmp_path_factory.mktemp("ks_default") / "ks", seed=0)


@pytest.fixture(scope="session")
def ks_dataset_raw(tmp_path_factory) -> Path:
    """Default units with the raw recording (recording.bin); Bombcell ran with extractRaw on."""
    return dsb.build_dataset(tmp_path_factory.mktemp("ks_raw") / "ks", seed=0, with_raw=True)


@pytest.fixture
def ks_dataset_copy(ks_dataset, tmp_path) -> Path:
    """A private copy of the default dataset, free to modify (or to open in Phy)."""
    return dsb.copy_dataset(ks_dataset, tmp_path / "ks")


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


@pytest.fixture(scope="session")
def bombcell_rerun():
    """``rerun(ks_dir, overrides, name) -> Path``: Bombcell with ``overrides`` into ks_dir/name.

    Cached for the session per (ks_dir, name); asking for the same name with other overrides
    is an error. The Kilosort folder's cluster_*.tsv files keep describing the default run.
    """
    done: dict[tuple[str, str], tuple[object, Path]] = {}

    def rerun(ks_dir, overrides, name):
        key = (str(Path(ks_dir).resolve()), str(name))
        frozen = _freeze(dict(overrides or {}))
        if key in done:
            previous, path = done[key]
            if previous != frozen:
                raise ValueError(f"Bombcell variant {name!r} of {ks_dir} already ran with other overrides")
            return path
        path = dsb.rerun_bombcell(ks_dir, dict(overrides or {}), name)
        done[key] = (frozen, path)
        return path

    return rerun


@pytest.fixture(scope="session")
def si_dataset(tmp_path_factory):
    """``si_dataset(variant="default", layout="export") -> SIDataset``, built once per session."""
    built: dict[tuple[str, str], si_builder.SIDataset] = {}

    def get(variant: str = "default", layout: str = "export") -> si_builder.SIDataset:
        key = (variant, layout)
        if key not in built:
            out = tmp_path_factory.mktemp(f"si_{variant}_{layout}") / "data"
            built[key] = si_builder.build_si_dataset(out, variant=variant, layout=layout, seed=0)
        return built[key]

    return get


@pytest.fixture
def si_dataset_copy(si_dataset, tmp_path):
    """``copy(variant="default", layout="export", dst=None) -> SIDataset``: a private copy to edit or open."""
    n = [0]

    def copy(variant: str = "default", layout: str = "export", dst=None) -> si_builder.SIDataset:
        n[0] += 1
        dst = Path(dst) if dst is not None else tmp_path / f"si_{variant}_{layout}_{n[0]}"
        return si_builder.si_dataset_copy(si_dataset(variant, layout), dst)

    return copy


@pytest.fixture(autouse=True)
def screen_1080p(monkeypatch):
    """Offscreen Qt has one 800x600 screen, which the plugin's first look (gui/layout.py) would size Phy's window
    to; tests see a 1920x1080 screen instead, as most users' (tests/test_first_look.py sets others)."""
    from qtpy.QtCore import QRect

    from phy_bcreason.gui import layout

    monkeypatch.setattr(layout, "available_geometry", lambda widget: QRect(0, 0, 1920, 1080))
    monkeypatch.setattr(layout, "maximize", lambda window: window.setGeometry(0, 0, 1920, 1080))


@pytest.fixture(scope="session")
def qapp():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from phy.gui.qt import QApplication

    return QApplication.instance() or QApplication([])


@pytest.fixture
def open_phy(qapp, tmp_path):
    """``open_phy(ks_dir) -> (controller, gui)``: a real TemplateController and GUI with the plugin,
    closed (and Phy's event registry reset) after the test."""
    from phylib.utils import reset

    from phy_bcreason.demo import open_gui

    opened = []

    def _open(ks_dir):
        controller, gui = open_gui(ks_dir, tmp_path / "phy-config")
        opened.append((controller, gui))
        return controller, gui

    yield _open
    for controller, gui in opened:
        gui.close()
        controller.close()
    reset()


@contextlib.contextmanager
def plain_phy(ks_dir, config_dir):
    """Phy's own TemplateController and GUI on ``ks_dir``, with no plugin: yields (controller, app); closed and
    Phy's event registry reset afterwards."""
    import phylib.utils
    from phy.apps.template import TemplateController, get_template_params
    from phy.gui.qt import create_app

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = create_app()
    controller = TemplateController(config_dir=Path(config_dir), clear_cache=True, clear_state=True,
                                    enable_threading=False, **get_template_params(str(Path(ks_dir) / "params.py")))
    try:
        gui = controller.create_gui(do_prompt_save=False)
        try:
            gui.show()
            app.processEvents()
            yield controller, app
        finally:
            gui.close()
    finally:
        controller.close()
        phylib.utils.reset()


@pytest.fixture(scope="session")
def ur_dataset(tmp_path_factory):
    """``tests/ur_builder.py``'s dataset (Phy folder, analyzer, four models, their predictions), built once per
    session. Read-only: ``ur_builder.ur_dataset_copy(ur_dataset, dst)`` for a private copy."""
    from tests import ur_builder

    return ur_builder.build_ur_dataset(tmp_path_factory.mktemp("ur") / "data", seed=0)
