"""Tests for the installer (phy_bcreason/install.py), as `phy-bcreason install-plugin` and as the checkout's
install_plugin.py: every test works in tmp folders, never in the real ~/.phy."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phy_bcreason import install as ip

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "install_plugin.py"

USER_CONFIG = textwrap.dedent(
    """\
    # my phy config
    c = get_config()
    c.Plugins.dirs = [r'/some/dir']
    c.TemplateGUI.plugins = ['SomeOtherPlugin']
    c.WaveformView.n_spikes_waveforms = 42
    """
)


@pytest.fixture(autouse=True)
def _no_real_home(tmp_path, monkeypatch):
    """Make sure nothing can reach the real ~/.phy, even by accident (USERPROFILE: Path.home() on Windows)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))


def load_phy_config(config_dir):
    """Load phy_config.py with Phy's own loader, as Phy does at startup."""
    from phy.utils.config import load_master_config

    config = load_master_config(config_dir=Path(config_dir))
    assert config, "Phy failed to load phy_config.py (load_master_config returned {})"
    return config


def snapshot(root):
    """Every path under root with its bytes (None for dirs)."""
    root = Path(root)
    if not root.exists():
        return None
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
    }


def paths(cfg):
    return cfg / "plugins", cfg / "plugins" / "phy_bcreason_loader.py", cfg / "phy_config.py"


def run_cli(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


# ------------------------------------------------------------------------------
# install
# ------------------------------------------------------------------------------


def test_fresh_install_creates_files_and_phy_reads_lists(tmp_path):
    cfg = tmp_path / "cfg"
    plugins, loader, config = paths(cfg)
    actions = ip.install(cfg)

    assert loader.is_file() and config.is_file()
    assert "from phy_bcreason.plugin import BombcellReasonPlugin" in loader.read_text()
    assert "--uninstall" in loader.read_text()  # header says how to remove it
    text = config.read_text()
    assert text.startswith(ip.phy_default_config(cfg))  # Phy's own default template is kept
    assert text.count(ip.BEGIN_MARKER) == 1 and text.count(ip.END_MARKER) == 1
    assert len(actions) >= 2 and all("\n" not in a for a in actions)
    assert not (cfg / "phy_config.py.bcreason-backup").exists()  # nothing to back up

    config_obj = load_phy_config(cfg)
    dirs, gui_plugins = config_obj.Plugins.dirs, config_obj.TemplateGUI.plugins
    assert type(dirs) is list and type(gui_plugins) is list
    assert dirs == [str(plugins)]
    assert gui_plugins == ["BombcellReasonPlugin"]


def test_existing_config_keeps_other_plugins_and_settings(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    plugins, loader, config = paths(cfg)
    config.write_text(USER_CONFIG)

    ip.install(cfg)

    assert config.read_text().startswith(USER_CONFIG)  # append-only
    assert (cfg / "phy_config.py.bcreason-backup").read_text() == USER_CONFIG
    c = load_phy_config(cfg)
    assert c.Plugins.dirs == ["/some/dir", str(plugins)]
    assert c.TemplateGUI.plugins == ["SomeOtherPlugin", "BombcellReasonPlugin"]
    assert c.WaveformView.n_spikes_waveforms == 42


@pytest.mark.parametrize(
    "user_text, want_dirs, want_plugins",
    [
        # no `c = get_config()` line at all
        ("# only a comment\n", ["{plugins}"], ["BombcellReasonPlugin"]),
        # empty file
        ("", ["{plugins}"], ["BombcellReasonPlugin"]),
        # traitlets lazy values (c.X.y.append on an unset trait leaves a LazyConfigValue)
        (
            "c = get_config()\nc.TemplateGUI.plugins.append('Lazy')\nc.Plugins.dirs.append(r'/lazy')\n",
            ["/lazy", "{plugins}"],
            ["Lazy", "BombcellReasonPlugin"],
        ),
        # tuples, plugin already listed, plugins dir already listed with a trailing slash
        (
            "c = get_config()\nc.TemplateGUI.plugins = ('BombcellReasonPlugin', 'X')\n"
            "c.Plugins.dirs = (r'{plugins}/',)\n",
            ["{plugins}/"],
            ["BombcellReasonPlugin", "X"],
        ),
        # something that is not a list at all
        ("c = get_config()\nc.TemplateGUI.plugins = None\n", ["{plugins}"], ["BombcellReasonPlugin"]),
    ],
    ids=["no-get_config", "empty", "lazy-append", "tuples-already-present", "none"],
)
def test_block_is_robust_to_user_file_shapes(tmp_path, user_text, want_dirs, want_plugins):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    plugins, _, config = paths(cfg)
    config.write_text(user_text.format(plugins=plugins))

    ip.install(cfg)

    c = load_phy_config(cfg)
    assert type(c.Plugins.dirs) is list and type(c.TemplateGUI.plugins) is list
    assert c.Plugins.dirs == [d.format(plugins=plugins) for d in want_dirs]
    assert c.TemplateGUI.plugins == want_plugins


def test_install_twice_is_idempotent_and_keeps_original_backup(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    plugins, loader, config = paths(cfg)
    backup = cfg / "phy_config.py.bcreason-backup"
    config.write_text(USER_CONFIG)

    ip.install(cfg)
    after_first = snapshot(cfg)
    second = ip.install(cfg)
    assert snapshot(cfg) == after_first
    assert any(a.startswith("loader already installed") for a in second)
    assert any(a.startswith("config block already present") for a in second)

    # An outdated block (e.g. from an older installer) is replaced in place, not duplicated,
    # and the backup still holds the user's original file.
    config.write_text(config.read_text().replace("'BombcellReasonPlugin'", "'OldName'"))
    ip.install(cfg)
    text = config.read_text()
    assert text.count(ip.BEGIN_MARKER) == 1 and text.count(ip.END_MARKER) == 1
    assert "OldName" not in text
    assert backup.read_text() == USER_CONFIG
    assert sorted(p.name for p in plugins.iterdir()) == ["phy_bcreason_loader.py"]

    c = load_phy_config(cfg)
    assert c.Plugins.dirs == ["/some/dir", str(plugins)]
    assert c.TemplateGUI.plugins == ["SomeOtherPlugin", "BombcellReasonPlugin"]


def test_existing_backup_is_not_overwritten(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _, _, config = paths(cfg)
    backup = cfg / "phy_config.py.bcreason-backup"
    config.write_text(USER_CONFIG)
    backup.write_text("# an older backup\n")

    ip.install(cfg)
    assert backup.read_text() == "# an older backup\n"


# ------------------------------------------------------------------------------
# uninstall
# ------------------------------------------------------------------------------


def test_uninstall_restores_original_byte_for_byte(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _, loader, config = paths(cfg)
    # CRLF line endings and no trailing newline: the hardest case to undo by text editing.
    original = USER_CONFIG.replace("\n", "\r\n").rstrip().encode() + b"  # no newline"
    config.write_bytes(original)

    ip.install(cfg)
    assert config.read_bytes() != original
    assert b"\r\n# >>> phy-bcreason >>>" in config.read_bytes()  # block follows the file's line endings
    assert load_phy_config(cfg).TemplateGUI.plugins == ["SomeOtherPlugin", "BombcellReasonPlugin"]

    ip.uninstall(cfg)
    assert config.read_bytes() == original
    assert not loader.exists()
    assert not (cfg / "phy_config.py.bcreason-backup").exists()


def test_uninstall_after_fresh_install_removes_config(tmp_path):
    cfg = tmp_path / "cfg"
    _, loader, config = paths(cfg)
    ip.install(cfg)
    assert config.exists()

    ip.uninstall(cfg)
    assert not config.exists()
    assert not loader.exists()
    assert not (cfg / "phy_config.py.bcreason-backup").exists()


def test_uninstall_keeps_edits_made_after_install(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _, loader, config = paths(cfg)
    config.write_text(USER_CONFIG)
    ip.install(cfg)
    with config.open("a") as f:
        f.write("c.TemplateGUI.n_spikes_amplitudes = 7\n")

    ip.uninstall(cfg)
    text = config.read_text()
    assert ip.BEGIN_MARKER not in text and "BombcellReasonPlugin" not in text
    assert text == USER_CONFIG + "c.TemplateGUI.n_spikes_amplitudes = 7\n"
    assert not loader.exists()


def test_uninstall_removes_block_when_no_backup(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _, _, config = paths(cfg)
    config.write_text(USER_CONFIG)
    ip.install(cfg)
    (cfg / "phy_config.py.bcreason-backup").unlink()

    ip.uninstall(cfg)
    assert config.read_text() == USER_CONFIG


def test_uninstall_leaves_foreign_loader_alone(tmp_path):
    cfg = tmp_path / "cfg"
    plugins, loader, _ = paths(cfg)
    plugins.mkdir(parents=True)
    loader.write_text("# somebody else's file\n")
    ip.uninstall(cfg)
    assert loader.read_text() == "# somebody else's file\n"


def test_uninstall_when_nothing_installed_is_harmless(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "phy_config.py").write_text(USER_CONFIG)
    before = snapshot(cfg)
    ip.uninstall(cfg)
    assert snapshot(cfg) == before
    assert ip.uninstall(tmp_path / "missing") and not (tmp_path / "missing").exists()


# ------------------------------------------------------------------------------
# dry run
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [None, USER_CONFIG], ids=["fresh", "existing"])
def test_dry_run_writes_nothing(tmp_path, existing):
    cfg = tmp_path / "cfg"
    if existing is not None:
        cfg.mkdir()
        (cfg / "phy_config.py").write_text(existing)
    before = snapshot(tmp_path)

    actions = ip.install(cfg, dry_run=True)
    assert actions and all(a.startswith("[dry-run]") for a in actions)
    assert snapshot(tmp_path) == before

    ip.install(cfg)
    installed = snapshot(tmp_path)
    assert installed != before
    actions = ip.uninstall(cfg, dry_run=True)
    assert any(a.startswith("[dry-run]") for a in actions)
    assert snapshot(tmp_path) == installed


# ------------------------------------------------------------------------------
# Phy really picks the plugin up
# ------------------------------------------------------------------------------

_ATTACH_SCRIPT = textwrap.dedent(
    """\
    import sys
    from pathlib import Path
    {prelude}
    from phy.utils.plugin import attach_plugins

    class Controller:
        gui_name = 'TemplateGUI'

    ctrl = Controller()
    print('ATTACHED', attach_plugins(ctrl, config_dir=Path(sys.argv[1])))
    print('FLAG', getattr(ctrl, 'bcreason_attached', False))
    """
)


def _run_phy(tmp_path, cfg, prelude="", pythonpath=None):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    script = _ATTACH_SCRIPT.format(prelude=prelude)
    return subprocess.run(
        [sys.executable, "-c", script, str(cfg)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )


_CONTROLLER_SCRIPT = textwrap.dedent(
    """\
    import sys
    from pathlib import Path
    from phy.apps.template import TemplateController, get_template_params

    config_dir, ks_dir = Path(sys.argv[1]), Path(sys.argv[2])
    controller = TemplateController(config_dir=config_dir, clear_cache=True, enable_threading=False,
                                    **get_template_params(str(ks_dir / 'params.py')))
    print('ATTACHED', list(controller.attached_plugins))
    print('COLUMN', controller.cluster_metrics['bc_label'](0) if 'bc_label' in controller.cluster_metrics else None)
    controller.close()
    """
)


def test_template_controller_attaches_the_installed_plugin(tmp_path, ks_dataset_copy):
    """A real TemplateController started with the installed config attaches the real plugin."""
    cfg = tmp_path / "cfg"
    ip.install(cfg)

    def start_phy():
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
        return subprocess.run([sys.executable, "-c", _CONTROLLER_SCRIPT, str(cfg), str(ks_dataset_copy)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    res = start_phy()
    assert res.returncode == 0, res.stderr
    assert "ATTACHED ['BombcellReasonPlugin']" in res.stdout
    assert "COLUMN GOOD" in res.stdout  # cluster 0 of the default dataset, as Bombcell labelled it

    ip.uninstall(cfg)
    res = start_phy()
    assert res.returncode == 0, res.stderr
    assert "ATTACHED []" in res.stdout


def test_loader_warns_instead_of_crashing_when_package_missing(tmp_path):
    cfg = tmp_path / "cfg"
    ip.install(cfg)
    prelude = (
        "sys.modules['phy_bcreason'] = None  # simulate 'not installed'\n"
        "import logging\n"
        "h = logging.StreamHandler()  # like the phy CLI, show warnings on stderr\n"
        "h.setLevel(logging.WARNING)\n"
        "logging.getLogger().addHandler(h)\n"
    )
    res = _run_phy(tmp_path, cfg, prelude=prelude)
    assert res.returncode == 0, res.stderr
    assert "ATTACHED []" in res.stdout
    assert "phy_bcreason package is not installed" in res.stderr
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------


def test_cli_install_and_uninstall(tmp_path):
    cfg = tmp_path / "cfg"
    _, loader, config = paths(cfg)
    res = run_cli("--config-dir", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert loader.is_file() and config.is_file()
    assert str(loader) in res.stdout
    assert load_phy_config(cfg).TemplateGUI.plugins == ["BombcellReasonPlugin"]

    res = run_cli("--config-dir", str(cfg), "--uninstall", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not loader.exists() and not config.exists()


def test_cli_dry_run_writes_nothing(tmp_path):
    cfg = tmp_path / "cfg"
    res = run_cli("--config-dir", str(cfg), "--dry-run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[dry-run]" in res.stdout
    assert not cfg.exists()


def test_cli_default_config_dir_is_home_dot_phy(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    res = run_cli(env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (home / ".phy" / "plugins" / "phy_bcreason_loader.py").is_file()
    assert (home / ".phy" / "phy_config.py").is_file()


@pytest.mark.parametrize("target", ["regular-file", "config-is-dir"])
def test_cli_unwritable_target_exits_2_with_one_line(tmp_path, target):
    if target == "regular-file":
        cfg = tmp_path / "not_a_dir"
        cfg.write_text("x")
    else:
        cfg = tmp_path / "cfg"
        (cfg / "phy_config.py").mkdir(parents=True)
    before = snapshot(tmp_path)

    for extra in ([], ["--dry-run"], ["--uninstall"]):
        res = run_cli("--config-dir", str(cfg), *extra, cwd=tmp_path)
        assert res.returncode == 2, (extra, res.stdout, res.stderr)
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and "error" in lines[0], res.stderr
        assert "Traceback" not in res.stderr
    assert snapshot(tmp_path) == before


def test_cli_refuses_half_marked_config(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    config = cfg / "phy_config.py"
    config.write_text(USER_CONFIG + ip.BEGIN_MARKER + "\n")
    res = run_cli("--config-dir", str(cfg), cwd=tmp_path)
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1
    assert config.read_text() == USER_CONFIG + ip.BEGIN_MARKER + "\n"


# ------------------------------------------------------------------------------
# install_plugin.py is a thin entry to the package's installer
# ------------------------------------------------------------------------------


def test_script_is_the_package_installer():
    spec = importlib.util.spec_from_file_location("install_plugin_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert Path(script.install.__code__.co_filename).resolve() == Path(ip.__file__).resolve()
    assert script.loader_text() == ip.loader_text()


def test_script_runs_with_the_standard_library_alone(tmp_path):
    """`python -S`: no site-packages at all, as before the package (or anything) is installed."""
    cfg = tmp_path / "cfg"
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-S", str(SCRIPT), "--config-dir", str(cfg)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (cfg / "plugins" / "phy_bcreason_loader.py").is_file()
    assert load_phy_config(cfg).TemplateGUI.plugins == ["BombcellReasonPlugin"]


# ------------------------------------------------------------------------------
# phy-bcreason install-plugin / uninstall-plugin / --version
# ------------------------------------------------------------------------------


def run_package_cli(*args, env=None, cwd=None):
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_package_cli_install_dry_run_uninstall(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _, loader, config = paths(cfg)
    config.write_text(USER_CONFIG)

    res = run_package_cli("install-plugin", "--config-dir", str(cfg), "--dry-run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[dry-run]" in res.stdout and config.read_text() == USER_CONFIG and not loader.exists()

    res = run_package_cli("install-plugin", "--config-dir", str(cfg), cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert str(loader) in res.stdout
    assert "phy_bcreason" in res.stdout.splitlines()[-1]  # which Python phy runs, and whether it finds us
    c = load_phy_config(cfg)
    assert c.TemplateGUI.plugins == ["SomeOtherPlugin", "BombcellReasonPlugin"]
    assert "phy-bcreason uninstall-plugin" in loader.read_text()

    res = run_package_cli("uninstall-plugin", "--config-dir", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert config.read_text() == USER_CONFIG and not loader.exists()
    assert not (cfg / "phy_config.py.bcreason-backup").exists()


def test_package_cli_error_is_one_line(tmp_path):
    cfg = tmp_path / "not_a_dir"
    cfg.write_text("x")
    for command in ("install-plugin", "uninstall-plugin"):
        res = run_package_cli(command, "--config-dir", str(cfg), cwd=tmp_path)
        assert res.returncode == 2
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("phy-bcreason: error:"), res.stderr


def test_version_is_the_package_version(tmp_path):
    import phy_bcreason

    res = run_package_cli("--version", cwd=tmp_path)
    assert res.returncode == 0
    assert res.stdout.strip() == f"phy-bcreason {phy_bcreason.__version__}"
    namespace = {}
    exec((REPO / "phy_bcreason" / "_version.py").read_text(), namespace)
    assert namespace["__version__"] == phy_bcreason.__version__
    assert '\nversion = "' not in (REPO / "pyproject.toml").read_text()  # read from _version.py, not repeated


# ------------------------------------------------------------------------------
# Which Python runs phy, and does it find the package: regular, editable, user installs
# ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory):
    """A virtual environment with neither phy nor phy_bcreason, and a `phy` command that runs its Python."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(subprocess.run([str(python), "-c", purelib], capture_output=True, text=True,
                                        check=True).stdout.strip())
    phy = bin_dir / "phy"
    phy.write_text(f"#!{python}\nimport sys\nfrom phy.apps import phycli\nsys.exit(phycli())\n")
    phy.chmod(0o755)
    return bin_dir, python, site_packages


def _fake_package(folder: Path) -> Path:
    package = folder / "phy_bcreason"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    return package


def _fake_dist_info(site_packages: Path, direct_url: dict | None) -> None:
    info = site_packages / "phy_bcreason-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phy-bcreason\nVersion: 9.9\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))


@pytest.fixture
def venv_on_path(bare_venv, monkeypatch):
    bin_dir, python, site_packages = bare_venv
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    yield bin_dir, python, site_packages
    for path in site_packages.iterdir():  # the module's venv back as it was
        if path.name.startswith(("phy_bcreason", "__editable__", "_fake_editable")):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def test_report_names_phys_python_when_package_missing(venv_on_path):
    bin_dir, python, _ = venv_on_path
    found = ip.find_package()
    assert found["python"] == str(python) and str(bin_dir / "phy") in found["how"]
    assert found["package"] is None
    lines = ip.package_report(found)
    assert lines[0].startswith(f"note: phy_bcreason is not installed in {python}")
    assert f"{python} -m pip install" in lines[0]
    assert any("phy is not installed" in line for line in lines)


def test_report_regular_install(venv_on_path):
    _, python, site_packages = venv_on_path
    package = _fake_package(site_packages)
    _fake_dist_info(site_packages, None)
    found = ip.find_package()
    assert (found["kind"], found["version"]) == ("site", "9.9")
    assert Path(found["package"]) == package
    assert ip.package_report(found)[0] == (f"phy_bcreason 9.9 will be loaded by {python} (the Python of "
                                           f"{python.parent / 'phy'}): installed in {package}")


def test_report_editable_install_found_through_meta_path_finder(venv_on_path, tmp_path):
    """As setuptools' editable installs: a .pth installs a meta-path finder; no sys.path entry holds the package."""
    _, python, site_packages = venv_on_path
    source = tmp_path / "checkout"
    package = _fake_package(source)
    (site_packages / "_fake_editable_finder.py").write_text(textwrap.dedent(f"""\
        import importlib.util, sys
        class Finder:
            @classmethod
            def find_spec(cls, name, path=None, target=None):
                if name == "phy_bcreason":
                    return importlib.util.spec_from_file_location(
                        name, {str(package / "__init__.py")!r}, submodule_search_locations=[{str(package)!r}])
        def install():
            sys.meta_path.append(Finder)
        """))
    (site_packages / "__editable__.phy_bcreason-9.9.pth").write_text(
        "import _fake_editable_finder; _fake_editable_finder.install()\n")
    _fake_dist_info(site_packages, {"url": source.as_uri(), "dir_info": {"editable": True}})
    found = ip.find_package()
    assert found["kind"] == "editable" and Path(found["package"]) == package
    assert f"editable install of {package}" in ip.package_report(found)[0]


def test_report_user_install(tmp_path, monkeypatch):
    user_base = tmp_path / "userbase"
    monkeypatch.setenv("PYTHONUSERBASE", str(user_base))
    monkeypatch.delenv("PYTHONPATH", raising=False)  # it would come first on sys.path
    user_site = Path(subprocess.run([sys.executable, "-c", "import site; print(site.getusersitepackages())"],
                                    capture_output=True, text=True, check=True, env=dict(os.environ)).stdout.strip())
    package = _fake_package(user_site)
    found = ip.find_package(sys.executable)
    if found["package"] is None or Path(found["package"]) != package:
        pytest.skip("this Python does not use a user site (a virtual environment)")
    assert found["kind"] == "user"
    assert f"user install in {package}" in ip.package_report(found)[0]


# ------------------------------------------------------------------------------
# Windows-shaped environments: Scripts\python.exe, a phy.exe launcher without a #! line, paths with spaces
# ------------------------------------------------------------------------------


@pytest.fixture
def windows_env(bare_venv, tmp_path):
    """``My Env\\Scripts\\`` as a Windows venv lays it out, under folders with spaces in their names: its
    pyvenv.cfg and a python.exe (here this machine's interpreter, linked), so that it runs here as a venv."""
    _, venv_python, _ = bare_venv
    env = tmp_path / "Program Files" / "My Env"
    (env / "Scripts").mkdir(parents=True)
    shutil.copy(venv_python.parent.parent / "pyvenv.cfg", env / "pyvenv.cfg")
    python = env / "Scripts" / "python.exe"
    try:
        python.symlink_to(os.path.realpath(venv_python))
    except OSError as exc:   # Windows without Developer Mode (WinError 1314)
        pytest.skip(f"no symlinks here: {exc}")
    return env / "Scripts", python


def _zip_of_main() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("__main__.py", "import sys\nfrom phy.apps import phycli\nsys.exit(phycli())\n")
    return buffer.getvalue()


STUB = b"MZ\x90\x00" + bytes(range(256)) * 64   # a launcher's own code: no #! line, no interpreter


def test_pip_launcher_names_its_python_inside(windows_env):
    scripts, python = windows_env
    phy = scripts / "phy.exe"   # distlib's layout: launcher, #! line (quoted: spaces), zip with __main__.py
    phy.write_bytes(STUB + f'#!"{python}"\r\n'.encode() + _zip_of_main())
    assert ip._script_python(str(phy)) == str(python)


def test_uv_trampoline_names_its_python_at_its_end(windows_env):
    scripts, python = windows_env
    path = str(python).encode()
    for magic in (b"UVUV", b"UVSC"):
        phy = scripts / "phy.exe"   # uv's layout: launcher, zip, interpreter path, its length, magic number
        phy.write_bytes(STUB + _zip_of_main() + path + len(path).to_bytes(4, "little") + magic)
        assert ip._script_python(str(phy)) == str(python)


def test_unreadable_launcher_falls_back_to_python_exe_beside_it(windows_env, monkeypatch):
    scripts, python = windows_env
    phy = scripts / "phy.exe"
    phy.write_bytes(STUB + _zip_of_main())
    assert ip._script_python(str(phy)) is None
    monkeypatch.setattr(ip.shutil, "which", lambda name: str(phy) if name == "phy" else None)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert ip.phy_python() == (str(python), f"the python.exe beside {phy}")
    found = ip.find_package()
    assert found["python"] == str(python) and found["package"] is None and "error" not in found
    # the pip command is pasted as is: quoted, since the path has spaces
    assert ip.shell_quote([str(python), "-m", "pip", "install", "phy-bcreason"]) in ip.package_report(found)[0]


def test_pip_sh_shim_for_an_interpreter_path_with_spaces(windows_env):
    _, python = windows_env
    phy = python.parent / "phy"
    phy.write_text(f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n")
    assert ip._script_python(str(phy)) == str(python)


def test_pip_command_is_quoted_for_cmd_and_powershell():
    python = r"C:\Program Files\Python311\python.exe"
    line = ip.shell_quote([python, "-m", "pip", "install", "phy-bcreason"], windows=True)
    cmd = rf'"{python}" -m pip install phy-bcreason'
    assert line == f"{cmd} (in PowerShell: & {cmd})"
    assert ip.shell_quote([r"C:\Python311\python.exe", "-m", "pip"], windows=True) == r"C:\Python311\python.exe -m pip"
    assert ip.shell_quote(["/opt/my env/bin/python", "-m", "pip"], windows=False) == "'/opt/my env/bin/python' -m pip"


def test_windows_paths_editable_url_and_other_drives():
    import ntpath
    import nturl2path

    # direct_url.json of an editable install on Windows: file:///C:/... is C:\..., not /C:/...
    assert ip.url_path("file:///C:/Users/Me/My%20Code/phy-bcreason", nturl2path.url2pathname) == \
        r"C:\Users\Me\My Code\phy-bcreason"
    assert ip.url_path("file://server/share/phy-bcreason", nturl2path.url2pathname) == r"\\server\share\phy-bcreason"
    assert ip.url_path("https://example.org/x") == ""
    # the same folder in another case is the same folder; another drive is never inside (commonpath raises)
    assert ip.inside_folder(r"C:\Users\Me\My Code\phy-bcreason\phy_bcreason", r"c:\users\me\my code", ntpath)
    assert not ip.inside_folder(r"D:\src\phy_bcreason", r"C:\Users\Me\AppData\Roaming\Python", ntpath)
    assert not ip.inside_folder(r"C:\src\phy_bcreason", r"C:\src2", ntpath)


# uv's relocatable shim, as uv writes the scripts of the environments of its cache (`uv tool run`, uvx)
UV_SHIM = "#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'python' \"$0\" \"$@\"\n' '''\nimport sys\n"


def test_uv_relocatable_shim_names_the_python_beside_the_real_script(tmp_path):
    env_bin = tmp_path / "archive-v0" / "abc" / "bin"
    env_bin.mkdir(parents=True)
    python = env_bin / "python"
    python.write_text("")
    (env_bin / "phy").write_text(UV_SHIM)
    assert ip._script_python(str(env_bin / "phy")) == str(python)
    if os.name != "nt":   # uv's tool bin dir links to the environment's script: the python beside its target
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "phy").symlink_to(env_bin / "phy")
        assert ip._script_python(str(tmp_path / "bin" / "phy")) == str(python)


def test_uv_cache_environment_gets_a_note(tmp_path):
    cached = str(tmp_path / "cache" / "uv" / "archive-v0" / "gpghW5gZ" / "bin" / "python")
    tool = str(tmp_path / "share" / "uv" / "tools" / "phy" / "bin" / "python")
    assert ip.uv_ephemeral(cached, cache_dir="") and not ip.uv_ephemeral(tool, cache_dir="")
    assert ip.uv_ephemeral(str(tmp_path / "c" / "x" / "bin" / "python"), cache_dir=str(tmp_path / "c"))
    found = {"python": cached, "how": "the Python of phy", "package": "/x/phy_bcreason", "phy": "/x/phy",
             "kind": "site", "version": "9.9"}
    lines = ip.package_report(found)
    assert lines[0].startswith(f"phy_bcreason 9.9 will be loaded by {cached}")
    assert lines[-1].startswith(f"note: {cached} is a temporary environment in uv's cache")
    assert "uv tool install phy --with phy-bcreason" in lines[-1]
    found["python"] = tool
    assert not any(line.startswith("note:") for line in ip.package_report(found))


@pytest.mark.skipif(importlib.util.find_spec("uv") is None and shutil.which("uv") is None,
                    reason="uv is not installed (python -m pip install uv; .ci/run installs it)")
def test_uv_written_script_names_its_python(tmp_path):
    """A console script as uv writes it (in a relocatable venv, as in its cache: the shim; in a plain one, a #!
    line), from a tiny wheel made here: nothing from the index."""
    import zipfile

    uv = [sys.executable, "-m", "uv"] if importlib.util.find_spec("uv") else [shutil.which("uv")]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    wheel = tmp_path / "hello-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("hello/__init__.py", "def main():\n    print('hi')\n")
        z.writestr("hello-1.dist-info/METADATA", "Metadata-Version: 2.1\nName: hello\nVersion: 1\n")
        z.writestr("hello-1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                              "Tag: py3-none-any\n")
        z.writestr("hello-1.dist-info/entry_points.txt", "[console_scripts]\nhello = hello:main\n")
        z.writestr("hello-1.dist-info/RECORD", "")
    for relocatable in (True, False):
        venv = tmp_path / f"venv{int(relocatable)}"
        subprocess.run([*uv, "venv", *(["--relocatable"] if relocatable else []), "--python", sys.executable,
                        str(venv)], check=True, env=env, capture_output=True)
        bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
        python = bin_dir / ("python.exe" if os.name == "nt" else "python")
        subprocess.run([*uv, "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)],
                       check=True, env=env, capture_output=True)
        script = bin_dir / ("hello.exe" if os.name == "nt" else "hello")
        if relocatable and os.name != "nt":
            assert "realpath" in script.read_text().splitlines()[1]   # uv's relocatable shim
        named = ip._script_python(str(script))
        assert named is not None and os.path.samefile(named, python), (relocatable, named)
