"""UnitRefine's model beside Bombcell in a Phy session, without Qt: the model's label, confidence and agreement
with Bombcell per cluster (the ur_ columns) and its contributions for the dock.

What UnitRefine or SpikeInterface saved for this sorting is read when the dataset opens (pandas only: no
scikit-learn in Phy's process). With a model folder configured (``c.BombcellReasonPlugin.unitrefine_model`` in
``phy_config.py``), the model itself runs in a child process (``phy-bcreason unitrefine --json``), off Phy's GUI
thread: SpikeInterface's own prediction and the exact contributions. A cluster made in Phy was never seen by the
model: its cells say so, never a parent's prediction."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..core.errors import UserError, first_line
from ..io.children import spawn_options
from ..unitrefine.opinion import ModelOpinion, UnitOpinion, find_opinion
from .child import CHILD_NICE

logger = logging.getLogger("phy")

UR_LABEL, UR_CONFIDENCE, UR_AGREES = UR_COLUMNS = ("ur_label", "ur_confidence", "ur_agrees")
NOT_SEEN = "(not seen)"        # a cluster made in Phy: the model never saw its spikes
COMPUTING = "(computing)"      # the model's child has not answered yet
OPTION = "unitrefine_model"    # c.BombcellReasonPlugin.unitrefine_model = r"path/to/model_folder"


def configured_model(config_dir) -> Path | None:
    """The model folder named in Phy's configuration (``phy_config.py`` in ``config_dir``), if any."""
    from phy.utils.config import load_master_config

    try:
        config = load_master_config(config_dir=Path(config_dir) if config_dir is not None else None)
        value = config.get("BombcellReasonPlugin", {}).get(OPTION)
    except Exception:  # a broken phy_config.py is Phy's to report
        logger.debug("phy-bcreason: could not read %s from Phy's configuration", OPTION, exc_info=True)
        return None
    return Path(str(value)).expanduser() if value else None


class SecondJudge:
    """The model's opinion of each cluster in a Phy session; never raises (see ``error``)."""

    def __init__(self, ks_dir, model_dir: Path | None = None):
        self.ks_dir, self.model_dir = Path(ks_dir), model_dir
        self.opinion: ModelOpinion | None = None
        self.error: str | None = None
        self.computing = model_dir is not None  # the child's answer is awaited
        self.process: subprocess.Popen | None = None
        self.closed = False
        try:
            self.opinion = find_opinion(self.ks_dir)  # saved predictions only
        except UserError as exc:
            self.error = first_line(exc)
        except Exception as exc:
            logger.debug("phy-bcreason: UnitRefine's predictions could not be read", exc_info=True)
            self.error = f"UnitRefine's predictions could not be read: {first_line(exc)}"

    @property
    def active(self) -> bool:
        """Something to show: predictions, a model to run, or why neither could be read."""
        return self.opinion is not None or self.model_dir is not None or self.error is not None

    # -- off the GUI thread ------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [sys.executable, "-m", "phy_bcreason", "unitrefine", str(self.ks_dir), "--model", str(self.model_dir),
                "--json", "--child", str(CHILD_NICE)]

    def run_model(self) -> ModelOpinion | str:
        """In the worker thread: the model run by SpikeInterface in a child process. Returns its opinion, or the
        one line that says why there is none."""
        if self.closed:
            return "Phy closed before the model ran"
        # stdin a pipe we never write to: the child ends when it ends (Phy closed or killed), through launchers too
        self.process = process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, **spawn_options(lower=True),
                                                  env={**os.environ, "PYTHONIOENCODING": "utf-8"})
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
        reader.start()
        out = process.stdout.read()
        process.wait()
        reader.join()
        process.stdin.close()
        if process.returncode != 0:
            lines = [line for line in b"".join(errors).decode("utf-8", "replace").splitlines() if line.strip()]
            return lines[-1].removeprefix("phy-bcreason: ") if lines else \
                f"the model's process ended with code {process.returncode}"
        return ModelOpinion.from_json(json.loads(out.decode("utf-8")))

    def close(self) -> None:
        """Phy closes: the model's process, if still running, ends now."""
        self.closed = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def take(self, answer) -> None:
        """On the GUI thread: the child's answer (an opinion, or why none)."""
        self.computing = False
        if isinstance(answer, ModelOpinion):
            self.opinion, self.error = answer, None
        else:
            self.error = answer if isinstance(answer, str) else "the model could not be run (details in phy.log)"

    # -- what Phy shows ----------------------------------------------------------------------------------------

    def unit(self, cluster_id: int) -> UnitOpinion | None:
        return self.opinion.units.get(int(cluster_id)) if self.opinion is not None else None

    def column_values(self, cluster_id: int, bombcell_label: str | None) -> dict:
        """ur_label, ur_confidence (NaN where none) and ur_agrees (1, 0, or None for an empty cell)."""
        unit = self.unit(cluster_id)
        if unit is None:
            label = COMPUTING if self.computing else NOT_SEEN if self.opinion is not None else ""
            return {UR_LABEL: label, UR_CONFIDENCE: math.nan, UR_AGREES: None}
        agrees = self.opinion.agrees(cluster_id, bombcell_label)
        return {UR_LABEL: unit.label, UR_CONFIDENCE: round(float(unit.confidence), 3),
                UR_AGREES: None if agrees is None else float(agrees)}

    def summary(self, cluster_id: int | None, bombcell_label: str | None) -> str:
        """The dock's line about the model for this cluster."""
        if self.error is not None:
            return f"UnitRefine: {self.error}"
        if self.opinion is None:
            return "UnitRefine: the model is running…" if self.computing else ""
        if cluster_id is None:
            return ""
        unit = self.unit(cluster_id)
        name = self.opinion.model_name
        if unit is None:
            return (f"UnitRefine ({name}): not seen by the model: cluster {cluster_id} was made in Phy, and the "
                    "model's prediction of its parents is not its own")
        agrees = self.opinion.agrees(cluster_id, bombcell_label)
        verdict = {True: "agrees with Bombcell", False: f"disagrees with Bombcell ({bombcell_label})",
                   None: "not comparable with Bombcell's label"}[agrees]
        return f"UnitRefine ({name}): {unit.label}, confidence {unit.confidence:.2f}: {verdict}"
