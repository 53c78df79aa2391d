"""The evidence panel (#18): what is drawn reproduces the metric values in the table, for every unit, every kind
of rule and several Bombcell runs; in a real Phy GUI the rules never wait for the picture; the CLI writes it.

The checks recompute each metric from the drawn features themselves (peaks counted, the fitted Gaussian's
cut-off, the violation counts with the sliding-refractory-period formula, the presence bins), not through the
panel's own `values`, so a picture that drifts from Bombcell's numbers fails here.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from scipy.stats import norm, poisson

from phy_bcreason import explain_folder
from phy_bcreason.cli import main as cli_main
from phy_bcreason.io.find import load_results
from phy_bcreason.live.evidence import PANEL_METRICS
from phy_bcreason.live.metrics import import_bombcell_functions
from phy_bcreason.live.pictures import disagreements, figure, measure, panels, summary
from phy_bcreason.live.recording import Recording, spike_clusters_of

# Bombcell runs besides the default: drift and distance metrics, the linear spatial-decay fit, and time chunks
# with Hill's refractory estimate (the names and overrides of test_bombcell_agreement's runs are shared).
RUNS = {
    "default": None,
    "drift_distance": {"computeDrift": True, "computeDistanceMetrics": True},
    "linfit": {"spDecayLinFit": True},
    "chunks_hill": {"computeTimeChunks": True, "deltaTimeChunk": 50, "rpv_method": "hill"},
}


def close(a, b) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12)) or (np.isnan(a) and np.isnan(b))


def from_features(panel: str, f: dict) -> dict[str, float]:
    """Metric values recomputed from what a panel draws (its features), independently of the panel's code."""
    if panel == "waveform" and "peaks" in f:
        trace, (start, stop) = np.asarray(f["trace"]), f["baseline"]
        out = {"nPeaks": len(f["peaks"]), "nTroughs": len(f["troughs"]),
               "waveformDuration_peakTrough": 1e6 * abs(f["duration"][1] - f["duration"][0]) / f["rate"],
               "waveformBaselineFlatness": np.max(np.abs(trace[start:stop])) / np.max(np.abs(trace))}
        # the troughs drawn are the waveform's own minima: the trough size of the ratios is the deepest
        out["troughSize"] = -np.min(trace[np.asarray(f["troughs"], dtype=int)])
        for name in ("mainTrough_width", "mainPeak_before_width"):
            if name in f:
                out[name] = f[name]["right"] - f[name]["left"]
        return out
    if panel == "amplitudes" and "fit" in f:
        height, mean, width, cutoff = f["fit"]
        return {"percentageSpikesMissing_gaussian": 100 * (1 - norm.cdf((mean - cutoff) / abs(width)))}
    if panel == "spatial_decay" and "params" in f:
        return {"spatialDecaySlope": -f["params"][0]}
    if panel == "refractory" and f.get("method") == "ibl_sliding" and "counts" in f:
        # Llobet et al.'s expected violations for a contamination C; the smallest C confirmed at any tauR
        n, tau_c, duration = f["n"], f["tauC"], f["duration"]
        effective = duration - 2 * n * tau_c
        contaminating = n * f["levels"][None, :]
        expected = (2 * (f["tested"][:, None] - tau_c) / effective * contaminating
                    * (n - contaminating + (contaminating - 1) / 2))
        confident = (poisson.sf(f["counts"][:, None], expected) >= f["confidence"]).any(axis=0)
        return {"fractionRPVs_estimatedTauR": f["levels"][np.argmax(confident)] if confident.any() else 1.0}
    if panel == "presence" and "counts" in f:
        counts = np.asarray(f["counts"])
        full = (counts >= 0.05 * np.percentile(counts, 90)) & (counts > 0)
        return {"presenceRatio": full.mean()}
    if panel == "drift" and "depths" in f:
        return {"maxDriftEstimate": np.nanmax(f["depths"]) - np.nanmin(f["depths"])}
    if panel == "raw" and "trace" in f:
        out = {"signalToNoiseRatio": np.max(np.abs(f["trace"])) / f["noise"]}
        if f.get("scaled") is not None:
            out["rawAmplitude"] = abs(np.nanmax(f["scaled"])) + abs(np.nanmin(f["scaled"]))
        return out
    return {}


def check_summary(drawn: dict, table: dict, cluster_id) -> set[str]:
    """Every value recomputed from the drawn features equals the table's; returns the metrics checked."""
    checked = set()
    for name, panel in drawn.items():
        assert not panel["withheld"], (cluster_id, name, panel["withheld"])
        for metric, value in from_features(name, panel["features"]).items():
            if metric == "troughSize":
                sizes = panel["features"].get("sizes")
                if sizes:
                    assert close(value, sizes["trough"]), (cluster_id, sizes, value)
                continue
            if metric in table and table[metric] is not None and not np.isnan(table[metric]):
                assert close(value, table[metric]), (cluster_id, metric, value, table[metric])
                checked.add(metric)
    return checked


@pytest.fixture(scope="module")
def runs(ks_dataset, bombcell_rerun):
    return {name: ks_dataset / "bombcell" if overrides is None else bombcell_rerun(ks_dataset, overrides, name)
            for name, overrides in RUNS.items()}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_unit_every_panel_reproduces_the_table(ks_dataset, runs, run):
    results = load_results(runs[run], ks_dir=ks_dataset)
    explanation = explain_folder(ks_dataset, bombcell_dir=runs[run])
    import_bombcell_functions()
    recording = Recording.load(ks_dataset, results.params, results.metrics)
    spike_clusters = spike_clusters_of(ks_dataset)
    checked: dict[str, int] = {}
    for i, cluster_id in enumerate(results.cluster_ids.tolist()):
        evidence = measure(recording, np.flatnonzero(spike_clusters == cluster_id))
        comparisons = explanation.comparisons(cluster_id)
        table = {c["metric"]: c["value"] for c in comparisons}
        table.update({k: float(v) for k, v in results.metrics.iloc[i].items() if isinstance(v, (int, float))})
        for metric in check_summary(summary(panels(evidence), comparisons), table, cluster_id):
            checked[metric] = checked.get(metric, 0) + 1
    must = {"nPeaks", "nTroughs", "waveformDuration_peakTrough", "waveformBaselineFlatness", "mainTrough_width",
            "spatialDecaySlope", "percentageSpikesMissing_gaussian", "presenceRatio"}
    must |= {"maxDriftEstimate"} if run == "drift_distance" else set()
    must |= {"fractionRPVs_estimatedTauR"} if run != "chunks_hill" else set()
    assert must <= set(checked), must - set(checked)
    assert min(checked[m] for m in must) >= 15, checked  # most of the 27 units, not one lucky one


def test_time_chunks_and_hill_are_drawn_as_bombcell_kept_them(ks_dataset, runs):
    """With time chunks, the spikes over time show the chunks and the kept range Bombcell chose, and the
    refractory panel's contamination (Hill) equals the table's."""
    results = load_results(runs["chunks_hill"], ks_dir=ks_dataset)  # accepted: nSpikes counts kept chunks only
    import_bombcell_functions()
    recording = Recording.load(ks_dataset, results.params, results.metrics)
    spike_clusters = spike_clusters_of(ks_dataset)
    partial = 0
    for i, cluster_id in enumerate(results.cluster_ids.tolist()):
        row = results.metrics.iloc[i]
        built = panels(measure(recording, np.flatnonzero(spike_clusters == cluster_id)))
        if np.isnan(row["presenceRatio"]):
            continue
        presence = built["presence"].data
        assert len(presence["chunks"]) > 2
        assert presence["kept"] == (row["useTheseTimesStart"], row["useTheseTimesStop"])
        partial += presence["kept"][1] - presence["kept"][0] < presence["chunks"][-1] - presence["chunks"][0] - 1
        refractory = built["refractory"]
        assert refractory.data["method"] == "hill"
        assert close(refractory.values["fractionRPVs_estimatedTauR"], row["fractionRPVs_estimatedTauR"]), cluster_id
    assert partial >= 1  # some unit kept only part of the recording


def test_a_panel_that_would_disagree_is_not_drawn(ks_dataset):
    explanation = explain_folder(ks_dataset)
    results = load_results(ks_dataset / "bombcell", ks_dir=ks_dataset)
    import_bombcell_functions()
    recording = Recording.load(ks_dataset, results.params, results.metrics)
    cluster_id = next(c for c in results.cluster_ids.tolist()
                      if any(d["metric"] == "nPeaks" for d in explanation.unit(c)["decisive"]))
    evidence = measure(recording, np.flatnonzero(spike_clusters_of(ks_dataset) == cluster_id))
    comparisons = explanation.comparisons(cluster_id)
    for c in comparisons:
        if c["metric"] == "nPeaks" and c["value"] is not None:
            c["value"] += 1  # a table that says otherwise than the picture
    built = panels(evidence)
    assert disagreements(built["waveform"], comparisons)  # though the unit is NOISE by nPeaks either way
    texts = [t.get_text() for ax in figure(evidence, comparisons, built=built).axes for t in ax.texts]
    assert any(t.startswith("not drawn: the picture would disagree with the table (nPeaks") for t in texts)
    assert not disagreements(built["amplitudes"], comparisons)


def panels_of_a_unit_decided_by(ks_dataset, metric):
    """(evidence, panels, comparisons) of the first unit whose label ``metric`` decided."""
    explanation = explain_folder(ks_dataset)
    results = load_results(ks_dataset / "bombcell", ks_dir=ks_dataset)
    import_bombcell_functions()
    recording = Recording.load(ks_dataset, results.params, results.metrics)
    cluster_id = first_decided_by(explanation, metric)
    evidence = measure(recording, np.flatnonzero(spike_clusters_of(ks_dataset) == cluster_id))
    return evidence, panels(evidence), explanation.comparisons(cluster_id)


FITTED = ("spatialDecaySlope", "percentageSpikesMissing_gaussian")
RATIOS = ("scndPeakToTroughRatio", "peak1ToPeak2Ratio", "mainPeakToTroughRatio", "troughToPeak2Ratio")


def test_a_value_within_the_precision_it_carries_is_drawn(ks_dataset):
    """The table's numbers as another run of Bombcell gives them: its fits 1 part in 1e6 off (one unit in the
    last place of np.exp moves them by up to 7e-7), its waveform ratios float32 numbers two units in their
    last place off (Bombcell divides in float32 where templates.npy is float32). Every panel is drawn."""
    evidence, built, comparisons = panels_of_a_unit_decided_by(ks_dataset, "percentageSpikesMissing_gaussian")
    drawn = {metric: value for panel in built.values() for metric, value in panel.values.items()}
    assert set(FITTED + RATIOS) <= set(drawn)
    for c in comparisons:
        if c["metric"] in FITTED:
            c["value"] = drawn[c["metric"]] * (1 + 1e-6)
        elif c["metric"] in RATIOS:
            c["value"] = float(np.nextafter(np.nextafter(np.float32(drawn[c["metric"]]), np.inf), np.inf))
            assert c["value"] != drawn[c["metric"]]
    assert {c["metric"] for c in comparisons if c["value"] != drawn.get(c["metric"])} >= set(FITTED + RATIOS)
    assert not any(panel["withheld"] for panel in summary(built, comparisons).values())
    texts = [t.get_text() for ax in figure(evidence, comparisons, built=built).axes for t in ax.texts]
    assert not any(t.startswith("not drawn") for t in texts)


def test_a_value_on_the_other_side_of_a_threshold_is_withheld_with_the_digits_that_differ(ks_dataset):
    """The same 1 part in 1e6, with a what-if threshold between the drawn value and the table's: the picture
    would show the unit passing a rule the table fails. Withheld, with the digits that tell the two apart."""
    metric = "percentageSpikesMissing_gaussian"
    evidence, built, comparisons = panels_of_a_unit_decided_by(ks_dataset, metric)
    drawn = built["amplitudes"].values[metric]
    table = drawn * (1 + 1e-6)
    (rule,) = [c for c in comparisons if c["metric"] == metric]
    rule.update(value=table, threshold=(drawn + table) / 2)  # fails (> threshold) in the table, passes drawn
    (text,) = disagreements(built["amplitudes"], comparisons)
    shown_drawn, rest = text.removeprefix(f"{metric}: ").split(" drawn, ")
    shown_table, rest = rest.split(" in the table")
    assert rest == f", on either side of > {rule['threshold']:g}"
    assert shown_drawn != shown_table
    # the digits shown are enough to tell which value is which
    assert abs(float(shown_drawn) - drawn) < abs(float(shown_drawn) - table)
    assert abs(float(shown_table) - table) < abs(float(shown_table) - drawn)
    texts = [t.get_text() for ax in figure(evidence, comparisons, built=built).axes for t in ax.texts]
    assert f"not drawn: the picture would disagree with the table ({text})" in texts


# -- in a real Phy GUI -------------------------------------------------------------------------------------------

def wait(condition, timeout=60.0) -> bool:
    from phy.gui.qt import QApplication

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    return bool(condition())


def first_decided_by(explanation, metric, label=None) -> int:
    return next(c for c in explanation.cluster_ids.tolist()
                if any(d["metric"] == metric for d in explanation.unit(c)["decisive"])
                and (label is None or explanation.unit(c)["label"] == label))


def picture_for(controller, gui, cluster_id):
    """Select a cluster as a user does; the rules are there at once, the picture follows. Returns the dock."""
    (view,) = gui.list_views("BombcellWhyView")
    controller.supervisor.select([cluster_id])
    assert wait(lambda: view.shown_id == cluster_id, 10)
    assert view.content.title.startswith(f"cluster {cluster_id}:")  # the rules did not wait for the picture
    assert wait(lambda: view.evidence.png is not None and view.evidence.cluster_id == cluster_id), \
        view.evidence.status.text()
    assert view.evidence.png.startswith(b"\x89PNG")
    assert not view.evidence.image.pixmap().isNull()
    return view


def test_in_phy_each_kind_of_rule_is_drawn_as_the_table_says(ks_dataset_copy, open_phy):
    explanation = explain_folder(ks_dataset_copy)
    controller, gui = open_phy(ks_dataset_copy)
    gui.show()
    cases = {  # a unit decided by each kind of rule
        "nPeaks": first_decided_by(explanation, "nPeaks", "NOISE"),
        "waveformBaselineFlatness": first_decided_by(explanation, "waveformBaselineFlatness"),
        "spatialDecaySlope": first_decided_by(explanation, "spatialDecaySlope"),
        "fractionRPVs_estimatedTauR": first_decided_by(explanation, "fractionRPVs_estimatedTauR", "MUA"),
        "percentageSpikesMissing_gaussian": first_decided_by(explanation, "percentageSpikesMissing_gaussian"),
        "presenceRatio": first_decided_by(explanation, "presenceRatio"),
        "mainPeakToTroughRatio": first_decided_by(explanation, "mainPeakToTroughRatio", "NON-SOMA"),
    }
    for metric, cluster_id in cases.items():
        view = picture_for(controller, gui, cluster_id)
        table = {c["metric"]: c["value"] for c in controller.phy_bcreason.live.explanation.comparisons(cluster_id)}
        checked = check_summary(view.evidence.summary, table, cluster_id)
        if metric != "mainPeakToTroughRatio":
            assert metric in checked, (metric, cluster_id)
        else:  # the NON-SOMA ratio, from the peak and trough sizes drawn
            sizes = view.evidence.summary["waveform"]["features"]["sizes"]
            assert close(max(sizes["before"], sizes["after"]) / sizes["trough"], table[metric])
        # panels with a rule that decided the label are drawn first, this one among them
        drawn = list(view.evidence.summary)
        decisive_panels = {panel for panel, metrics in PANEL_METRICS.items()
                           if any(d["metric"] in metrics for d in explanation.unit(cluster_id)["decisive"])}
        assert set(drawn[:len(decisive_panels)]) == decisive_panels, (cluster_id, drawn)
        assert next(p for p, metrics in PANEL_METRICS.items() if metric in metrics) in decisive_panels
    # the pictures are kept per cluster: selecting one again shows it without asking the child
    pictures = controller.phy_bcreason.pictures
    asked = len(pictures.cache)
    view = picture_for(controller, gui, cases["nPeaks"])
    assert len(pictures.cache) == asked


def test_in_phy_a_merged_cluster_is_drawn_from_its_live_metrics(ks_dataset_copy, open_phy):
    explanation = explain_folder(ks_dataset_copy)
    controller, gui = open_phy(ks_dataset_copy)
    gui.show()
    good = [c for c in explanation.cluster_ids.tolist() if explanation.unit(c)["label"] == "GOOD"][:2]
    plugin = controller.phy_bcreason
    for cluster_id in good:
        picture_for(controller, gui, cluster_id)
    assert {k[0] for k in plugin.pictures.cache} >= set(good)
    controller.supervisor.merge(good)
    (merged,) = [c for c in controller.supervisor.clustering.cluster_ids.tolist() if c not in explanation.cluster_ids]
    assert not {k[0] for k in plugin.pictures.cache} & set(good)  # dropped with their clusters
    assert wait(lambda: plugin.live.has_row(merged), 60)
    view = picture_for(controller, gui, merged)
    live = plugin.live
    table = {c["metric"]: c["value"] for c in live.explanation.comparisons(merged)}
    checked = check_summary(view.evidence.summary, table, merged)
    assert {"nPeaks", "percentageSpikesMissing_gaussian", "fractionRPVs_estimatedTauR", "presenceRatio"} <= checked
    assert view.evidence.summary["presence"]["values"]["nSpikes"] == sum(
        len(controller.supervisor.clustering.spikes_per_cluster[c]) for c in [merged])


def test_in_phy_raw_amplitude_and_snr_are_drawn(ks_dataset_raw, tmp_path, open_phy):
    from tests.dataset_builder import copy_dataset

    ks = copy_dataset(ks_dataset_raw, tmp_path / "ks")
    explanation = explain_folder(ks)
    controller, gui = open_phy(ks)
    gui.show()
    cluster_id = first_decided_by(explanation, "rawAmplitude")
    view = picture_for(controller, gui, cluster_id)
    table = {c["metric"]: c["value"] for c in controller.phy_bcreason.live.explanation.comparisons(cluster_id)}
    assert {"rawAmplitude", "signalToNoiseRatio"} <= check_summary(view.evidence.summary, table, cluster_id)


def test_cli_figure(ks_dataset_copy, tmp_path, capsys):
    explanation = explain_folder(ks_dataset_copy)
    cluster_id = first_decided_by(explanation, "nPeaks", "NOISE")
    before = sorted(p.name for p in ks_dataset_copy.rglob("*"))
    out = tmp_path / "why.png"
    assert cli_main(["explain", str(ks_dataset_copy), "--cluster", str(cluster_id), "--figure", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 20_000
    assert f"wrote {out}" in capsys.readouterr().out
    assert sorted(p.name for p in ks_dataset_copy.rglob("*")) == before  # nothing written into the data
    assert cli_main(["explain", str(ks_dataset_copy), "--figure", str(out)]) == 2
    assert "give exactly one --cluster" in capsys.readouterr().err


def test_no_pictures_for_matlab_results(capsys, tmp_path, open_phy):
    """Python Bombcell's functions do not measure what MATLAB's did: no picture, said in one line."""
    from tests.test_matlab import matlab_demo_folder

    ks = matlab_demo_folder(tmp_path)
    assert cli_main(["explain", str(ks), "--cluster", "0", "--figure", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("phy-bcreason: no pictures for MATLAB Bombcell results")
    assert not (tmp_path / "x.png").exists()
    controller, gui = open_phy(ks)
    gui.show()
    (view,) = gui.list_views("BombcellWhyView")
    controller.supervisor.select([0])
    assert wait(lambda: view.shown_id == 0, 10)
    assert view.evidence.status.text().startswith("Not available for MATLAB Bombcell results: pictures")
    assert view.evidence.png is None and view.evidence.request is None


def test_in_phy_a_picture_that_fails_says_so(ks_dataset_copy, open_phy, monkeypatch):
    """The child's failure (here: a crash in the request) is one line in the panel; the rules stay."""
    from phy_bcreason.live.process import MetricsProcess

    def broken(*args, **kwargs):
        raise RuntimeError("simulated")

    monkeypatch.setattr(MetricsProcess, "evidence", broken)
    controller, gui = open_phy(ks_dataset_copy)
    gui.show()
    (view,) = gui.list_views("BombcellWhyView")
    controller.supervisor.select([0])
    assert wait(lambda: view.evidence.status.text().startswith("No picture: it could not be drawn"), 30), \
        view.evidence.status.text()
    assert view.content.title.startswith("cluster 0:") and view.evidence.png is None


def test_a_unit_with_too_few_spikes_to_pass_the_refractory_test_says_so():
    """Issue #22: a 248-spike unit of the demo has 0 pairs in its refractory window and contamination 1; the
    panel says why (Bombcell expects so few pairs at the threshold that even 0 cannot confirm it) and its
    pair counts start at 0 (an empty histogram was centred on zero: negative 'spike pairs')."""
    from phy_bcreason.demo import DEMO_DATA
    from phy_bcreason.live.evidence import PANEL_TITLES

    results = load_results(DEMO_DATA / "bombcell", ks_dir=DEMO_DATA)
    explanation = explain_folder(DEMO_DATA)
    import_bombcell_functions()
    recording = Recording.load(DEMO_DATA, results.params, results.metrics)
    spike_clusters = spike_clusters_of(DEMO_DATA)
    found = []
    for cluster_id in results.cluster_ids.tolist():
        comparisons = explanation.comparisons(cluster_id)
        rpv = next(c for c in comparisons if c["metric"] == "fractionRPVs_estimatedTauR")
        if rpv["value"] != 1.0 or rpv["status"] not in ("decisive", "also_failed"):
            continue
        evidence = measure(recording, np.flatnonzero(spike_clusters == cluster_id))
        built = panels(evidence)
        assert built["refractory"].data["violations"] == 0
        (ax,) = [ax for ax in figure(evidence, comparisons, built=built).axes
                 if ax.get_title(loc="left").startswith(PANEL_TITLES["refractory"])]
        texts = " ".join(t.get_text() for t in ax.texts)
        assert "too few spikes to pass" in texts and "even 0 pairs" in texts, texts
        assert ax.get_ylim()[0] == 0
        found.append(cluster_id)
    assert found  # the demo has such a unit (cluster 14, 248 spikes)
