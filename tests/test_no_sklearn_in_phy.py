"""Reading UnitRefine's saved predictions, and the opinion a child process sends back as JSON, imports neither
scikit-learn nor skops nor shap nor numba nor SpikeInterface (#26): Phy's process does both, and these libraries are
large and slow to import; only a model folder needs them, and the GUI applies one in a child process. Run in a fresh
Python process (pytest's own has them imported already), with Phy's template GUI and the plugin imported as Phy
imports them. Nothing is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "skops", "shap", "numba", "spikeinterface", "pyarrow")

SESSION = textwrap.dedent(
    """\
    import json, sys
    import phy.apps.template
    import phy_bcreason.plugin
    from phy_bcreason.unitrefine.opinion import ModelOpinion, find_opinion, model_agrees

    heavy = %r
    before = [m for m in heavy if m in sys.modules]
    opinion = find_opinion(sys.argv[1])
    table = opinion.table()
    again = ModelOpinion.from_json(json.loads(open(sys.argv[2], encoding="utf-8").read()))
    agrees = [again.agrees(c, "GOOD") for c in again.units]
    out = {"before": before, "after": [m for m in heavy if m in sys.modules], "rows": len(table),
           "units": len(again.units), "with_contributions": again.units[0].contributions is not None,
           "agrees": model_agrees(table["ur_label"].iloc[0], "GOOD", classes=opinion.classes)}
    print("RESULT " + json.dumps(out))
    """
) % (HEAVY,)


def test_reading_predictions_imports_no_model_library(ur_dataset, tmp_path):
    from phy_bcreason.unitrefine.opinion import find_opinion
    from tests.ur_builder import FOREST

    child_json = tmp_path / "opinion.json"  # what `phy-bcreason unitrefine --model DIR --json` prints
    child_json.write_text(json.dumps(find_opinion(ur_dataset.phy_dir, ur_dataset.models[FOREST],
                                                  contributions=True).to_json()), encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", SESSION, str(ur_dataset.phy_dir), str(child_json)],
                          capture_output=True, text=True, env=env, timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, done.stderr[-3000:]
    out = json.loads(line[len("RESULT "):])
    assert out["rows"] == out["units"] == 27 and out["with_contributions"] and out["agrees"] is True
    assert out["before"] == [] and out["after"] == []
