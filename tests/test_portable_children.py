"""The plugin's child processes under what Windows does to them, reproduced on Linux (issue #24).

A real ``phy template-gui`` on the bundled demo (started as `tests/test_exit.py` starts it), with a driver plugin
that does what a user does: a merge, whose metrics, label and Bombcell's own judgement of it come from the
live-metrics child; then the merged cluster selected, and its picture drawn by the child. Then Phy is killed
(SIGKILL) or its window closed, and no process of ours (every process that inherited the test's tag in its
environment) may be left 5 s later. Each test puts one Windows condition in front of every child we start:

- a launcher: in a Windows venv or uv environment, ``sys.executable`` is a program that runs the real
  interpreter as its own child and waits, so a child's ``os.getppid()`` is the launcher, not Phy. Here a shell
  script that runs Python without ``exec`` (it logs each start), set as ``sys.executable`` in Phy's process;
- no ``os.nice``, ``os.getpriority``, ``os.setpriority`` in any process;
- a parent pid that never changes once the parent is gone (Windows does not reparent): ``os.getppid`` frozen.

The conditions are made by a ``sitecustomize.py`` on the path of Phy and of everything it starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.test_exit import _outputs, _start_phy, _wait_until

TAG = "BCREASON_PORTABLE_TAG"  # inherited by every process Phy starts: how ours are found
LIFETIME = 5.0  # seconds a child of ours may outlive Phy

SITECUSTOMIZE = textwrap.dedent(
    """\
    import os
    import sys

    launcher = os.environ.pop("BCREASON_TEST_LAUNCHER", None)  # Phy's process only: its children run Python
    if launcher:
        sys.executable = launcher
    if os.environ.get("BCREASON_TEST_NO_NICE"):
        for name in ("nice", "getpriority", "setpriority"):
            if hasattr(os, name):
                delattr(os, name)
    if os.environ.get("BCREASON_TEST_FROZEN_PPID"):
        _parent = os.getppid()
        os.getppid = lambda: _parent
    """
)

DRIVER = textwrap.dedent(
    """\
    import json
    import os
    import threading
    import time
    from pathlib import Path

    import numpy as np
    from phy import IPlugin, connect
    from qtpy.QtCore import QTimer

    LABELS = ("GOOD", "MUA", "NOISE", "NON-SOMA")


    class BcreasonPortableDriver(IPlugin):
        def attach_to_controller(self, controller):
            @connect(sender=controller)
            def on_gui_ready(sender, gui):
                mode, status = os.environ["BCREASON_EXIT_MODE"], Path(os.environ["BCREASON_EXIT_STATUS"])
                supervisor = controller.supervisor
                state = {"step": "ready", "since": time.monotonic()}
                timer = QTimer(gui)

                def finish(**report):
                    timer.stop()
                    process = controller.phy_bcreason.live.process
                    report.update(phy=os.getpid(), child=process.child.pid if process else None)
                    if mode == "close" or "failed" in report:
                        status.write_text(json.dumps(report) + "\\n")
                        if mode == "close":
                            gui.close()
                        return
                    # to be killed in the middle of a computation: a minute's work for the child (each cluster
                    # all of the demo's spikes but one, so that no count is remembered from the one before)
                    spikes = np.arange(len(controller.model.spike_times))
                    clusters = {100_000 + i: np.delete(spikes, i) for i in range(60)}
                    threading.Thread(target=process.table, args=(clusters,), daemon=True).start()
                    report.update(busy=True)
                    QTimer.singleShot(1000, lambda: status.write_text(json.dumps(report) + "\\n"))

                def tick():
                    live = controller.phy_bcreason.live
                    step = state["step"]
                    if live.process is not None and live.process.child.poll() is not None:
                        return finish(failed=f"the child ended ({live.process.child.returncode}) at {step}")
                    if time.monotonic() - state["since"] > 240:
                        return finish(failed=f"stuck at {step}", row=live.column_values(state.get("merged", 0)))
                    if step == "ready":
                        if live.process is None or not live.process.ready:
                            return
                        # offscreen Qt's screen is 800x600, which the first look sized the window to: a user's
                        # window, large enough for the dock to show its picture
                        gui.resize(1600, 1000)
                        supervisor.merge(list(supervisor.clustering.cluster_ids[:2]))
                        supervisor.is_dirty = lambda: False  # no save prompt when the window closes
                        state.update(step="merged", merged=int(max(supervisor.clustering.cluster_ids)))
                    elif step == "merged":
                        merged = state["merged"]
                        row = live.column_values(merged)
                        if merged in live.failed:
                            return finish(failed=live.failed[merged], row=row)
                        run = live.results.cluster_ids.tolist()
                        if row["bc_label"] not in LABELS or not all(c in live._judged for c in [*run, merged]):
                            return
                        saved = live.results.saved_labels_for(run)  # the labels Bombcell's run saved
                        state.update(step="picture", label=row["bc_label"], source=row["bc_source"],
                                     judged=live._judged[merged], run=len(run),
                                     judged_run=sum(live._judged[c] == label for c, label in zip(run, saved)))
                        supervisor.select([merged])
                    elif step == "picture":
                        (view,) = gui.list_views("BombcellWhyView")
                        evidence = view.evidence
                        if evidence.status.text().startswith("No picture"):
                            return finish(failed=evidence.status.text())
                        if evidence.cluster_id != state["merged"] or evidence.png is None:
                            return
                        finish(merged=state["merged"], label=state["label"], source=state["source"],
                               judged=state["judged"], judged_run=state["judged_run"], run=state["run"],
                               png=evidence.png[:8].hex(), reason=view.content.reason)

                timer.timeout.connect(tick)
                timer.start(100)
    """
)


def _ours(tag: str) -> list[psutil.Process]:
    """The processes that inherited ``tag`` (Phy, the launchers, our children), zombies aside."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(TAG) == tag and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _launcher(tmp_path: Path) -> tuple[Path, Path]:
    """A launcher as a Windows venv's python.exe: runs the real interpreter as its child and waits for it."""
    script, log = tmp_path / "launcher.sh", tmp_path / "launched.txt"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n"{sys.executable}" "$@"\nexit $?\n')
    script.chmod(0o755)
    return script, log


def _run(tmp_path: Path, mode: str, conditions: dict[str, str]) -> dict:
    """Phy with the driver under ``conditions`` (variables read by the sitecustomize), ended by ``mode`` once
    the merge has its label and the picture is drawn: what the driver saw, what was left and for how long."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    tag = uuid.uuid4().hex
    proc, status = _start_phy(tmp_path, "close" if mode == "close" else "wait", False, driver=DRIVER,
                              driver_class="BcreasonPortableDriver", env={TAG: tag, **conditions},
                              pythonpath=(str(site),))
    try:
        done = _wait_until(lambda: status.is_file() and status.read_text().endswith("\n") or
                           proc.poll() is not None, 400)
        assert done and status.is_file(), f"Phy ended before the driver did its work: {_outputs(tmp_path)}"
        report = json.loads(status.read_text())
        assert "failed" not in report, (report, _outputs(tmp_path)[1][-3000:])
        report["processes"] = {p.pid: p.cmdline() for p in _ours(tag)}
        report["tree"] = {p.pid: p.ppid() for p in _ours(tag)}
        if mode == "kill":  # the child is computing when Phy is killed
            child = psutil.Process(_live_child(report))
            before = sum(child.cpu_times()[:2])
            time.sleep(0.5)
            report["busy_cpu"] = sum(child.cpu_times()[:2]) - before
        ended = time.monotonic()
        if mode == "kill":
            proc.kill()
        proc.wait(timeout=120)
        if mode == "close":
            ended = time.monotonic()  # from Phy's end
        _wait_until(lambda: not _ours(tag), LIFETIME + 5)
        report["left"] = {p.pid: p.cmdline() for p in _ours(tag)}
        report["ended_after"] = time.monotonic() - ended
        report["returncode"] = proc.returncode
        return report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for process in _ours(tag):  # what the code under test failed to end
            process.kill()


def _assert_user_saw_everything(report: dict) -> None:
    assert report["source"] == "live" and report["label"] in ("GOOD", "MUA", "NOISE", "NON-SOMA"), report
    assert report["judged"] == report["label"], report  # Bombcell's classifier, in the child, agrees
    assert report["judged_run"] == report["run"], report  # and reproduces the run's saved labels
    assert report["png"] == b"\x89PNG\r\n\x1a\n".hex(), report


def _assert_nothing_left(report: dict) -> None:
    if "busy_cpu" in report:
        assert report["busy_cpu"] > 0.1, report  # killed in the middle of a computation
    assert not report["left"], f"outlived Phy by {report['ended_after']:.1f} s: {report['left']}"
    assert report["ended_after"] < LIFETIME, report["ended_after"]
    print(f"children ended {report['ended_after']:.2f} s after Phy")


def _live_child(report: dict) -> int:
    (pid,) = [pid for pid, cmd in report["processes"].items() if "from phy_bcreason.live" in " ".join(cmd)
              and Path(cmd[0]).name.startswith("python")]
    return pid


@pytest.mark.skipif(sys.platform == "win32", reason="reproduces Windows on POSIX")
@pytest.mark.parametrize("mode", ["kill", "close"])
def test_children_through_a_launcher(tmp_path, mode):
    launcher, log = _launcher(tmp_path)
    report = _run(tmp_path, mode, {"BCREASON_TEST_LAUNCHER": str(launcher)})
    _assert_user_saw_everything(report)
    child = _live_child(report)
    parent = report["tree"][child]
    assert parent != report["phy"] and report["tree"][parent] == report["phy"]  # the launcher in between
    assert str(launcher) in " ".join(report["processes"][parent])
    launched = log.read_text()
    assert "from phy_bcreason.live" in launched and "parquet import main" in launched, launched
    if mode == "kill":
        assert report["returncode"] == -9
    _assert_nothing_left(report)
    stderr = _outputs(tmp_path)[1]
    assert "Traceback" not in stderr, stderr


@pytest.mark.skipif(sys.platform == "win32", reason="reproduces Windows on POSIX")
def test_children_without_nice_or_priorities(tmp_path):
    report = _run(tmp_path, "kill", {"BCREASON_TEST_NO_NICE": "1"})
    _assert_user_saw_everything(report)
    _assert_nothing_left(report)
    stderr = _outputs(tmp_path)[1]
    assert "Traceback" not in stderr, stderr


@pytest.mark.skipif(sys.platform == "win32", reason="reproduces Windows on POSIX")
def test_child_ends_when_its_parent_pid_never_changes(tmp_path):
    report = _run(tmp_path, "kill", {"BCREASON_TEST_FROZEN_PPID": "1"})
    _assert_user_saw_everything(report)
    _assert_nothing_left(report)


def test_the_sitecustomize_makes_the_conditions(tmp_path):
    """The conditions hold in a process started as our children are (a guard on the test itself)."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), BCREASON_TEST_NO_NICE="1", BCREASON_TEST_FROZEN_PPID="1",
               BCREASON_TEST_LAUNCHER="/launcher")
    code = ("import os, sys; print(hasattr(os, 'nice'), hasattr(os, 'setpriority'), sys.executable, "
            "'BCREASON_TEST_LAUNCHER' in os.environ, os.getppid() == os.getppid())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "/launcher", "False", "True"]


def test_spawn_options_per_os(monkeypatch):
    """Windows: its own process group, no console window, below normal priority if asked; POSIX: a session."""
    from phy_bcreason.io import children

    monkeypatch.setattr(sys, "platform", "win32")
    assert children.spawn_options() == {"creationflags": 0x00000200 | 0x08000000}
    assert children.spawn_options(lower=True) == {"creationflags": 0x00000200 | 0x08000000 | 0x00004000}
    monkeypatch.setattr(sys, "platform", "darwin")
    assert children.spawn_options(lower=True) == {"start_new_session": True}


def test_priority_and_heap_helpers_never_fail_where_the_os_lacks_them(monkeypatch, caplog):
    import ctypes
    import logging

    from phy_bcreason.io import children
    from phy_bcreason.live import pictures as evidence

    monkeypatch.delattr(os, "nice")
    with caplog.at_level(logging.DEBUG, logger="phy"):
        children.lower_priority(5)
    assert "runs at Phy's priority" in caplog.text

    def refuse(niceness):
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "nice", refuse, raising=False)
    children.lower_priority(5)

    evidence._glibc.cache_clear()
    monkeypatch.delattr(os, "confstr")  # as on Windows; macOS has no CS_GNU_LIBC_VERSION (ValueError)
    monkeypatch.setattr(ctypes, "CDLL", lambda *a: pytest.fail("malloc_trim looked for without glibc"))
    try:
        evidence._give_back_memory()
        assert not evidence._glibc()
    finally:
        evidence._glibc.cache_clear()
