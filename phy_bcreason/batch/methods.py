"""A methods paragraph for one Bombcell run: the classifier and how it was recognised, every active threshold with
its value and unit, the switches, and how many units each label got (``phy-bcreason methods``, the audit report).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.engine import Explanation
from ..core.judge import explain, installed_bombcell_version
from ..core.rules import CLASSIFIER_TITLES, MUA, NOISE, NONSOMATIC, PYTHON
from ..io.find import find_bombcell_dir, holds_results, load_results
from .audit import kilosort_dir_of, label_order

# Units of Bombcell's thresholds where they have one (ratios, fractions and counts of their own kind have none).
THRESHOLD_UNITS = {
    "maxNPeaks": "peaks", "maxNTroughs": "troughs", "minWvDuration": "µs", "maxWvDuration": "µs",
    "minSpatialDecaySlopeExp": "1/µm", "maxSpatialDecaySlopeExp": "1/µm",
    "minWidthFirstPeak_nonSomatic": "samples", "minWidthMainTrough_nonSomatic": "samples",
    "maxPercSpikesMissing": "%", "minNumSpikes": "spikes", "minAmplitude": "µV", "maxDrift": "µm",
}
LEADS = {NOISE: "A unit was labelled noise when", NONSOMATIC: "A unit was labelled non-somatic when",
         MUA: "A unit that was not noise was labelled MUA when"}


def _condition(e: Explanation, j: int) -> str:
    rule = e.rules[j]
    metric = f"|{rule.metric}|" if rule.absolute else rule.metric
    if rule.op == "isnan":
        return f"{metric} could not be computed (NaN)"
    unit = THRESHOLD_UNITS.get(rule.param, "")
    value = f"{e.thresholds[j]:g}" if np.isfinite(e.thresholds[j]) else "(unset)"
    return f"{metric} was {'above' if rule.op == '>' else 'below'} {value}{' ' + unit if unit else ''} ({rule.param})"


def _block_conditions(e: Explanation, block: str) -> list[str]:
    """The active comparisons of one block in words; a group (all of it must hold) as one condition, its
    members sharing an ``any_of`` tag as alternatives."""
    parts, groups = [], {}
    for j, rule in enumerate(e.rules):
        if rule.block != block or j in e.inactive:
            continue
        if rule.group:
            groups.setdefault(rule.group, {}).setdefault(rule.any_of or j, []).append(_condition(e, j))
            if len(groups[rule.group]) == 1 and len(groups[rule.group][rule.any_of or j]) == 1:
                parts.append(("group", rule.group))
        else:
            parts.append(_condition(e, j))
    out = []
    for part in parts:
        if isinstance(part, tuple):
            conditions = [" or ".join(alternatives) for alternatives in groups[part[1]].values()]
            out.append(f"all of ({'; '.join(conditions)})" if len(conditions) > 1 else conditions[0])
        else:
            out.append(part)
    return out


def methods_paragraph(explanation: Explanation) -> str:
    """A methods paragraph: the classifier and how it was recognised (and the Bombcell installed here), every
    active threshold with its value and unit, the switches, and how many units each label got."""
    from ..core.rules import switches_for

    e = explanation
    version = installed_bombcell_version()
    title = CLASSIFIER_TITLES[e.classifier]
    evidence = e.classified_by.removeprefix(title).lstrip(", ") or "recognised from the results"
    installed = f"; Bombcell {version} was installed when phy-bcreason read them" \
        if version and e.classifier == PYTHON else ""
    sentences = [f"Units were classified by {title} ({evidence}{installed})."]
    for block in (NOISE, NONSOMATIC, MUA):
        conditions = _block_conditions(e, block)
        if conditions:
            joiner = "; or when " if block == NONSOMATIC else ", or "
            sentences.append(f"{LEADS[block]} {joiner.join(conditions)}.")
    inactive = sorted({e.rules[j].name for j in e.inactive})
    if inactive:
        sentences.append(f"Not applied with these settings: {', '.join(inactive)}.")
    switches = [name for name in switches_for(e.classifier, e.rules) if name in e.params]
    if switches:
        sentences.append("Switches: " + ", ".join(f"{name} {'on' if _switch(e.params[name]) else 'off'}"
                                                   for name in switches) + ".")
    counts = Counter(str(label) or "(no label: no spikes)" for label in e.labels)
    counted = ", ".join(f"{counts[label]} {label}" for label in label_order(list(counts)))
    sentences.append(f"Of {len(e.labels)} units, {counted}.")
    if e.flagged.any():
        sentences.append(f"For {int(e.flagged.sum())} units the saved label differs from what these rules give; "
                         "the saved label is reported.")
    return " ".join(sentences)


def _switch(value) -> bool:
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def methods_for_folder(ks_dir: Path, bombcell_dir: Path | None = None) -> str:
    folder = Path(ks_dir)
    if folder.is_dir() and holds_results(folder) and bombcell_dir is None:
        results = load_results(folder, ks_dir=kilosort_dir_of(folder))
    else:
        results = load_results(find_bombcell_dir(folder, bombcell_dir), ks_dir=folder)
    return methods_paragraph(explain(results))
