#!/usr/bin/env python
"""CI: phy-bcreason installed the way users install it, from its wheel into a fresh virtual environment.

1. builds the sdist, and the wheel from that sdist (``python -m build``), and checks that both hold every file
   of the package (demo data, ``py.typed``, the installer), the sdist also ``install_plugin.py``;
2. ``python -m venv`` + ``pip install`` the wheel (not the checkout: phy, Bombcell... come from the index);
3. ``phy-bcreason --version`` and ``phy-bcreason install-plugin --config-dir`` into a temporary folder, whose
   report must name the venv's Python and its site-packages;
4. opens Phy headless on a copy of the installed package's demo data through that config alone (Phy's own
   plugin discovery loads the plugin: nothing of ours is imported first), and checks the plugin is attached,
   its ``bc_*`` columns are in the cluster view, and stdout holds only what the script prints;
5. ``phy-bcreason uninstall-plugin`` leaves the config folder as it was.

With ``--uv``, steps 3-5 are then done again on the same wheel installed as Phy's documentation installs Phy:
``uv tool install phy --with <wheel> --with-executables-from phy-bcreason`` into temporary ``UV_TOOL_DIR`` and
``UV_TOOL_BIN_DIR`` (uv's cache is the machine's, so a second run is quick); ``phy-bcreason`` and ``phy`` are
those of the tool bin dir, and install-plugin must name the tool environment's Python.

Usage: ``python .ci/wheel_check.py [--uv] [--keep]`` from anywhere (needs ``pip install build``, and ``uv`` for
``--uv``: ``python -m pip install uv``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "phy_bcreason"

OPEN_PHY = r"""
import json, shutil, sys, tempfile
from pathlib import Path

config_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
from phy.apps.template import TemplateController, get_template_params
from phy.gui.qt import create_app
from phylib.utils import reset

assert "phy_bcreason" not in sys.modules, "phy_bcreason was imported before Phy loaded its plugins"
import importlib.util
demo = Path(importlib.util.find_spec("phy_bcreason").submodule_search_locations[0]) / "demo_data"
ks_dir = shutil.copytree(demo, work / "ks")
create_app()
controller = TemplateController(config_dir=config_dir, clear_cache=True, clear_state=True, enable_threading=False,
                                **get_template_params(str(ks_dir / "params.py")))
gui = controller.create_gui(do_prompt_save=False)
import phy_bcreason
columns = list(controller.supervisor.cluster_view.columns)
first = int(controller.supervisor.clustering.cluster_ids[0])
result = {
    "attached": list(controller.attached_plugins),
    "columns": columns,
    "label": controller.cluster_metrics["bc_label"](first) if "bc_label" in controller.cluster_metrics else None,
    "package": phy_bcreason.__file__,
    "version": phy_bcreason.__version__,
}
gui.close()
reset()
print("RESULT " + json.dumps(result))
"""


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    print("$ " + " ".join("<script>" if "\n" in str(c) else str(c) for c in cmd), flush=True)
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(map(str, cmd))}\n--- stdout\n{res.stdout}\n--- stderr\n"
                 f"{res.stderr}")
    return res


def expected_package_files() -> set[str]:
    """Every file of the package in the checkout (git's list when there is one), as paths inside the package."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", PACKAGE], capture_output=True, text=True,
                                check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(REPO)) for p in (REPO / PACKAGE).rglob("*") if p.is_file()]
    return {p for p in listed if "__pycache__" not in p and (REPO / p).is_file()}


def check_archives(dist: Path, version: str) -> tuple[Path, Path]:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, (wheels, sdists)
    wheel, sdist = wheels[0], sdists[0]
    expected = expected_package_files()
    must = {f"{PACKAGE}/install.py", f"{PACKAGE}/py.typed", f"{PACKAGE}/demo_data/params.py",
            f"{PACKAGE}/live/child.py",  # the live-metrics process runs it: python -m phy_bcreason.live.child
            f"{PACKAGE}/demo_data/bombcell/templates._bc_qMetrics.parquet",
            f"{PACKAGE}/demo_data/bombcell/_bc_parameters._bc_qMetrics.parquet"}
    assert must <= expected, must - expected

    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = expected - in_wheel
    assert not missing, f"not in the wheel: {sorted(missing)}"
    dist_info = f"phy_bcreason-{version}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "phy-bcreason = phy_bcreason.cli:main" in entry_points, entry_points

    with tarfile.open(sdist) as tar:
        root = f"phy_bcreason-{version}/"
        in_sdist = {name[len(root):] for name in tar.getnames() if name.startswith(root)}
    missing = (expected | {"install_plugin.py", "README.md", "pyproject.toml"}) - in_sdist
    assert not missing, f"not in the sdist: {sorted(missing)}"
    print(f"{wheel.name}: {len(in_wheel)} files; {sdist.name}: {len(in_sdist)} files; "
          f"all {len(expected)} package files in both, install_plugin.py in the sdist")
    return wheel, sdist


def check_installed(tmp: Path, bin_dir: Path, python: Path, version: str) -> None:
    """Steps 3-5 with the ``phy-bcreason`` of ``bin_dir`` (first on PATH, as is its ``phy``), whose Python is
    ``python``: install-plugin into a temporary config, Phy opened through it, uninstall-plugin."""
    tmp.mkdir()

    # The environment of a user of that venv: its bin first on PATH, nothing of the checkout on sys.path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]), HOME=str(tmp / "home"),
               QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")
    (tmp / "home").mkdir()
    work = tmp / "work"
    work.mkdir()

    res = run([bin_dir / "phy-bcreason", "--version"], env=env, cwd=work)
    assert res.stdout.strip() == f"phy-bcreason {version}", res.stdout

    config_dir = tmp / "cfg"
    res = run([bin_dir / "phy-bcreason", "install-plugin", "--config-dir", config_dir], env=env, cwd=work)
    print(res.stdout, end="")
    site_packages = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        env=env, cwd=work).stdout.strip()
    last = res.stdout.splitlines()[-1]   # the report: the Python that runs `phy` (here: the venv's, the tool env's)
    assert last.startswith(f"phy_bcreason {version} will be loaded by {python} (") and \
        last.endswith(f": installed in {site_packages}{os.sep}phy_bcreason"), res.stdout
    assert "note:" not in res.stdout and res.stderr == "", (res.stdout, res.stderr)
    assert (config_dir / "plugins" / "phy_bcreason_loader.py").is_file()

    res = run([python, "-c", OPEN_PHY, config_dir, work], env=env, cwd=work)
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("RESULT "), f"unexpected stdout:\n{res.stdout}"
    result = json.loads(lines[0][len("RESULT "):])
    assert result["attached"] == ["BombcellReasonPlugin"], result["attached"]
    bc_columns = [c for c in result["columns"] if c.startswith("bc_")]
    assert {"bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin", "bc_source"} <= set(bc_columns), \
        result["columns"]
    assert result["label"] in ("GOOD", "MUA", "NOISE", "NON-SOMA"), result["label"]
    assert Path(result["package"]).resolve().is_relative_to(Path(site_packages).resolve()), result["package"]
    assert result["version"] == version
    assert "Traceback" not in res.stderr, res.stderr
    print(f"Phy through {config_dir}: plugin attached, columns {bc_columns}, first cluster {result['label']}")

    res = run([bin_dir / "phy-bcreason", "uninstall-plugin", "--config-dir", config_dir], env=env, cwd=work)
    assert not (config_dir / "phy_config.py").exists(), res.stdout
    assert not (config_dir / "plugins" / "phy_bcreason_loader.py").exists(), res.stdout


def main(argv: list[str]) -> int:
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="phy-bcreason-wheel-"))
    try:
        namespace: dict = {}
        exec((REPO / PACKAGE / "_version.py").read_text(), namespace)
        version = namespace["__version__"]

        dist = tmp / "dist"
        run([sys.executable, "-m", "build", "--outdir", dist, REPO])  # the sdist, then the wheel from it
        wheel, _ = check_archives(dist, version)

        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", venv])
        bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
        python = bin_dir / "python"
        run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        run([python, "-m", "pip", "install", "--quiet", wheel])
        print(f"installed {wheel.name} into {venv} ({time.monotonic() - start:.0f} s so far)", flush=True)
        check_installed(tmp / "pip", bin_dir, python, version)
        print(f"wheel check (pip venv) passed in {time.monotonic() - start:.0f} s", flush=True)

        if "--uv" in argv:
            uv_start = time.monotonic()
            tool_dir, tool_bin = tmp / "uv-tools", tmp / "uv-bin"
            uv_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
            uv_env.update(UV_TOOL_DIR=str(tool_dir), UV_TOOL_BIN_DIR=str(tool_bin), UV_NO_PROGRESS="1",
                          UV_PYTHON_DOWNLOADS="never")
            # --python: this interpreter (3.11, as CI's), never one uv would download
            run([sys.executable, "-m", "uv", "tool", "install", "--python", sys.executable, "phy",
                 "--with", wheel, "--with-executables-from", "phy-bcreason"], env=uv_env)
            tool_python = tool_dir / "phy" / ("Scripts" if os.name == "nt" else "bin") / "python"
            assert (tool_bin / "phy").exists() and (tool_bin / "phy-bcreason").exists(), list(tool_bin.iterdir())
            print(f"uv tool install: {sorted(p.name for p in tool_bin.iterdir())} in {tool_bin} "
                  f"({time.monotonic() - uv_start:.0f} s)", flush=True)
            check_installed(tmp / "uv", tool_bin, tool_python, version)
            # `uv tool run --from` (uvx): an environment in uv's cache, which install-plugin must call temporary
            res = run([sys.executable, "-m", "uv", "tool", "run", "--python", sys.executable, "--from", wheel,
                       "phy-bcreason", "install-plugin", "--dry-run", "--config-dir", tmp / "uvx-cfg"],
                      env=uv_env, cwd=tmp)
            last = res.stdout.splitlines()[-1]
            assert last.startswith("note: ") and "temporary environment in uv's cache" in last and \
                "uv tool install phy --with phy-bcreason" in last, res.stdout
            print(last)
            print(f"wheel check (uv tool) passed in {time.monotonic() - uv_start:.0f} s", flush=True)
        print(f"wheel check passed in {time.monotonic() - start:.0f} s")
        return 0
    finally:
        if "--keep" in argv:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
