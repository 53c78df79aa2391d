"""Phy with the plugin, run as a user runs it, ended every way a session ends: nothing of ours or Bombcell's on
stdout, no traceback on stderr, no process left behind.

Each test registers the plugin with the package's installer in a private HOME (``~/.phy`` there), starts
``phy template-gui`` on a copy of the bundled demo in a subprocess (offscreen Qt), and ends it once the plugin's
live-metrics process exists: by closing the window, by Ctrl-C (SIGINT to Phy's process group, as a terminal
sends it), by ``sys.exit()`` from a timer without closing the window, or by killing Phy (SIGKILL: the child
must then end by itself). A small driver plugin, registered in the same config, does what must happen inside
Phy (a merge, so that the child is computing, then the ending); it writes Phy's and the child's process ids to
a file, so that stdout stays Phy's own. No timing is asserted: the waits are only upper bounds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phy_bcreason import install
from phy_bcreason.demo import DEMO_DATA

REPO = Path(__file__).resolve().parents[1]
PHY_CLI = "import sys; sys.argv[0] = 'phy'; from phy.apps import phycli; phycli()"

DRIVER = textwrap.dedent(
    """\
    import os
    import sys
    from pathlib import Path

    from phy import IPlugin, connect
    from qtpy.QtCore import QTimer


    class BcreasonExitDriver(IPlugin):
        def attach_to_controller(self, controller):
            @connect(sender=controller)
            def on_gui_ready(sender, gui):
                mode, early = os.environ["BCREASON_EXIT_MODE"], os.environ["BCREASON_EXIT_EARLY"] == "1"
                status = Path(os.environ["BCREASON_EXIT_STATUS"])
                state = {"merged": early}
                timer = QTimer(gui)

                def tick():
                    plugin = getattr(controller, "phy_bcreason", None)
                    process = getattr(getattr(plugin, "live", None), "process", None)
                    if process is None or not (early or process.ready):
                        return
                    if not state["merged"]:  # the child computes the merged cluster while Phy ends
                        state["merged"] = True
                        supervisor = controller.supervisor
                        supervisor.merge(list(supervisor.clustering.cluster_ids[:2]))
                        supervisor.is_dirty = lambda: False  # no save prompt when the window closes
                        return
                    timer.stop()
                    status.write_text(f"{os.getpid()} {process.child.pid}\\n")
                    if mode == "close":
                        gui.close()
                    elif mode == "exit":
                        sys.exit(0)

                timer.timeout.connect(tick)
                timer.start(100)
    """
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        import psutil

        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    except ImportError:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition, limit: float) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _ctrl_c_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_phy(tmp_path: Path, mode: str, early: bool, driver: str = DRIVER, driver_class: str = "BcreasonExitDriver",
               env: dict | None = None, pythonpath: tuple[str, ...] = ()):
    """Phy on a copy of the demo with the plugin and ``driver`` (a plugin's source, its class ``driver_class``);
    ``env``: more variables for Phy's process, ``pythonpath``: folders before the repository's on its path."""
    home = tmp_path / "home"
    config_dir = home / ".phy"
    install.install(config_dir)  # what `phy-bcreason install-plugin` does, into the private HOME
    (config_dir / "plugins" / f"{driver_class.lower()}.py").write_text(driver)
    with open(config_dir / "phy_config.py", "a") as f:
        f.write(f"c.TemplateGUI.plugins.append('{driver_class}')\n")
    ks_dir = shutil.copytree(DEMO_DATA, tmp_path / "ks")
    status = tmp_path / "status"
    env = dict(os.environ, HOME=str(home), QT_QPA_PLATFORM="offscreen", BCREASON_EXIT_MODE=mode,
               BCREASON_EXIT_EARLY="1" if early else "0", BCREASON_EXIT_STATUS=str(status), **(env or {}),
               PYTHONPATH=os.pathsep.join(filter(None, [*pythonpath, str(REPO), os.environ.get("PYTHONPATH")])))
    out, err = open(tmp_path / "stdout.txt", "wb"), open(tmp_path / "stderr.txt", "wb")
    # Its own process group, so that Ctrl-C can be sent to it as a terminal sends it (not to pytest), and Ctrl-C
    # not ignored (as it is for a job started in the background by a non-interactive shell, and what it starts)
    proc = subprocess.Popen([sys.executable, "-c", PHY_CLI, "template-gui", str(ks_dir / "params.py")],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=tmp_path,
                            start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    out.close()
    err.close()
    return proc, status


def _outputs(tmp_path: Path) -> tuple[str, str]:
    return ((tmp_path / "stdout.txt").read_text(errors="replace"),
            (tmp_path / "stderr.txt").read_text(errors="replace"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "mode, early",
    [("close", False), ("sigint", False), ("exit", False), ("sigkill", False), ("exit", True), ("sigint", True)],
    ids=["window-closed", "ctrl-c", "sys-exit", "parent-killed", "sys-exit-while-child-starts",
         "ctrl-c-while-child-starts"],
)
def test_phy_ends_cleanly(tmp_path, mode, early):
    proc, status = _start_phy(tmp_path, mode, early)
    try:
        started = _wait_until(lambda: status.is_file() and status.read_text().endswith("\n") or
                              proc.poll() is not None, 600)
        assert started and status.is_file(), f"Phy ended before its plugin started its process: {_outputs(tmp_path)}"
        phy_pid, child_pid = map(int, status.read_text().split())
        assert phy_pid == proc.pid
        if mode == "sigint":
            os.killpg(proc.pid, signal.SIGINT)
        elif mode == "sigkill":
            proc.kill()
        proc.wait(timeout=300)
        child_gone = _wait_until(lambda: not _alive(child_pid), 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = _outputs(tmp_path)
    if child_gone is False:
        os.kill(child_pid, signal.SIGKILL)
    assert child_gone, f"the live-metrics process {child_pid} outlived Phy"
    assert proc.returncode == (-signal.SIGKILL if mode == "sigkill" else 0), stderr
    assert stdout == "", stdout  # Phy prints nothing on stdout; neither do we, nor Bombcell
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "ipywidgets" not in stderr, stderr  # Bombcell's import banner goes to the log, at debug level
    assert "phy-bcreason:" not in stderr, stderr  # no warning of ours either, on the demo and a merge
