"""Bombcell's classification rules as data: the single table every view reads, for every classifier.

Python Bombcell: `bombcell.quality_metrics.get_quality_unit_type` and `too_many_rpvs` (0.93-0.94).
SpikeInterface's `bombcell_label_units` (0.105, as `bombcell.run_bombcell_qc` runs it): its rows are made
from the run's own thresholds dict by `spikeinterface_rules`, following that function's sections, NaN policies
and compound non-somatic test.
MATLAB Bombcell: `bc.qm.getQualityUnitType` (main @ 845f8ff) as it classifies saved results, i.e. a table
(saveQMetrics.m, runAllQualityMetrics.m and loadSavedMetrics.m all pass one): `isfield` is false for a table,
so its legacy `isSomatic` test and its reset of empty units never run. Where the two test a metric
differently the table holds one row per classifier (``classifiers``); everything else is shared. How the
blocks combine into a label lives in `engine.py` (the same for both, but for ``UNLABELLED_EMPTY_UNITS``);
nothing else may restate a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

NOISE = "noise"
NONSOMATIC = "nonsomatic"
MUA = "mua"
BLOCKS = (NOISE, NONSOMATIC, MUA)
BLOCK_TITLES = {NOISE: "NOISE", NONSOMATIC: "NON-SOMATIC", MUA: "MUA"}

PYTHON, MATLAB, SPIKEINTERFACE = "python", "matlab", "spikeinterface"
CLASSIFIERS = (PYTHON, MATLAB, SPIKEINTERFACE)
CLASSIFIER_TITLES = {
    PYTHON: "Python Bombcell (get_quality_unit_type, 0.93-0.94)",
    MATLAB: "MATLAB Bombcell (bc.qm.getQualityUnitType)",
    SPIKEINTERFACE: "Bombcell through SpikeInterface (bombcell_label_units, 0.105)",
}

# The four comparisons Bombcell ANDs together in its first non-somatic test.
PEAK_GROUP = "peak1ToPeak2"
GROUP_PHRASES = {PEAK_GROUP: "peak1/peak2 shape (all 4 group thresholds)"}
GROUP_TESTS = {PEAK_GROUP: "all hold"}  # how a group's comparisons combine, for the dock

Flags = tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Rule:
    """One comparison of a Bombcell classifier.

    The rule *fires* when ``metric op threshold`` holds (``op`` is '>' or '<'), or when the metric is NaN
    (``op == 'isnan'``). A unit failing a rule is what pushes it into the rule's block.
    """

    block: str
    metric: str
    op: str
    param: str | None
    # Parameter switches that must be on (True) or off (False) for the classifier to apply the rule at all.
    requires: Flags = ()
    # The rule is not applied when every one of these switches is as given (MATLAB's `else` branches).
    unless: Flags = ()
    # The rule is not applied when this parameter is NaN.
    requires_set: str | None = None
    # Rules sharing a group only count when every member fires (Bombcell ANDs them).
    group: str | None = None
    # The classifier skips the rule for units where this metric is NaN.
    only_where_present: str | None = None
    # (switch, metric, value): with the switch on, units whose metric equals value are exempt.
    exempt_when: tuple[str, str, float] | None = None
    # Readable phrase for the reason text, where the comparison itself says too little.
    phrase: str | None = None
    classifiers: tuple[str, ...] = (PYTHON, MATLAB)
    # Within a group, members sharing this tag count as one condition that holds when any of them holds.
    any_of: str | None = None
    # The absolute value of the metric is compared (SpikeInterface's "abs").
    absolute: bool = False
    # Why the rule is never applied with this run's thresholds (SpikeInterface's incomplete compound test).
    never: str | None = None

    @property
    def name(self) -> str:
        metric = f"|{self.metric}|" if self.absolute else self.metric
        if self.op == "isnan":
            return f"isnan({metric})"
        return f"{metric}{self.op}{self.param}"


def _only(classifier: str, *rules: Rule, **changes) -> tuple[Rule, ...]:
    return tuple(replace(rule, classifiers=(classifier,), **changes) for rule in rules)


_LINEAR_FIT = (("computeSpatialDecay", True), ("spDecayLinFit", True))
# Python Bombcell tests `param["computeSpatialDecay"] & param["spDecayLinFit"]`, bitwise: switches stored as 2 and
# 1 give 0, and its `elif param["computeSpatialDecay"]` then applies the exponential test. A flag joined by "&" is
# that expression (`engine._switch_on`); each side is a switch of its own.
BITWISE_LINEAR_FIT = "computeSpatialDecay&spDecayLinFit"
_EXPONENTIAL_DECAY = (
    Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlopeExp"),
    Rule(NOISE, "spatialDecaySlope", ">", "maxSpatialDecaySlopeExp"),
)
_PEAK_GROUP_AND_MAIN_RATIO = (
    Rule(NONSOMATIC, "troughToPeak2Ratio", "<", "minTroughToPeak2Ratio_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainPeak_before_width", "<", "minWidthFirstPeak_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainTrough_width", "<", "minWidthMainTrough_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "peak1ToPeak2Ratio", ">", "maxPeak1ToPeak2Ratio_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainPeakToTroughRatio", ">", "maxMainPeakToTroughRatio_nonSomatic"),
)
_RPV = Rule(MUA, "fractionRPVs_estimatedTauR", ">", "maxRPVviolations")
_RAW = (
    Rule(MUA, "rawAmplitude", "<", "minAmplitude", requires=(("extractRaw", True),)),
    Rule(MUA, "signalToNoiseRatio", "<", "minSNR", requires=(("extractRaw", True),)),
)
_DISTANCE = (
    Rule(MUA, "isolationDistance", "<", "isoDmin", requires=(("computeDistanceMetrics", True),)),
    Rule(MUA, "Lratio", ">", "lratioMax", requires=(("computeDistanceMetrics", True),)),
)

RULES: tuple[Rule, ...] = (
    # NOISE: any one fires (units with nSpikes == 0 are never noise).
    Rule(NOISE, "nPeaks", "isnan", None, phrase="too few spikes to measure a waveform (nPeaks is NaN)"),
    Rule(NOISE, "nPeaks", ">", "maxNPeaks"),
    Rule(NOISE, "nTroughs", ">", "maxNTroughs"),
    Rule(NOISE, "waveformDuration_peakTrough", "<", "minWvDuration"),
    Rule(NOISE, "waveformDuration_peakTrough", ">", "maxWvDuration"),
    Rule(NOISE, "waveformBaselineFlatness", ">", "maxWvBaselineFraction"),
    Rule(NOISE, "scndPeakToTroughRatio", ">", "maxScndPeakToTroughRatio_noise"),
    # Linear fit: Python stores minus polyfit's slope and tests '<'; MATLAB stores the slope and tests '>'.
    *_only(PYTHON, Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlope",
                        requires=((BITWISE_LINEAR_FIT, True),))),
    *_only(MATLAB, Rule(NOISE, "spatialDecaySlope", ">", "minSpatialDecaySlope", requires=_LINEAR_FIT)),
    # Exponential fit: Python needs computeSpatialDecay on; MATLAB's else-branch applies it whenever the
    # linear test does not.
    *_only(PYTHON, *_EXPONENTIAL_DECAY, requires=(("computeSpatialDecay", True), (BITWISE_LINEAR_FIT, False))),
    *_only(MATLAB, *_EXPONENTIAL_DECAY, unless=_LINEAR_FIT),
    # NON-SOMATIC: (all four of the peak group) or the main peak/trough ratio.
    *_PEAK_GROUP_AND_MAIN_RATIO,
    # MUA: any one fires, for units that are not noise.
    Rule(MUA, "percentageSpikesMissing_gaussian", ">", "maxPercSpikesMissing"),
    Rule(MUA, "nSpikes", "<", "minNumSpikes"),
    *_only(PYTHON, _RPV, exempt_when=("keepUncertainRPVUnits", "RPV_status", 0)),
    *_only(MATLAB, _RPV),
    Rule(MUA, "presenceRatio", "<", "minPresenceRatio"),
    # Python skips units whose raw amplitude is NaN; MATLAB tests every unit.
    *_only(PYTHON, *_RAW, only_where_present="rawAmplitude"),
    *_only(MATLAB, *_RAW),
    Rule(MUA, "maxDriftEstimate", ">", "maxDrift", requires=(("computeDrift", True),)),
    # MATLAB also needs isoDmin to be a number.
    *_only(PYTHON, *_DISTANCE),
    *_only(MATLAB, *_DISTANCE, requires_set="isoDmin"),
)

# The switch that splits non-somatic units into good and MUA ones (it changes how the blocks combine).
SPLIT_SWITCHES = {PYTHON: "splitGoodAndMua_NonSomatic", MATLAB: "splitGoodAndMua_NonSomatic",
                  SPIKEINTERFACE: "split_non_somatic"}
# Units with nSpikes == 0: Python leaves them unlabelled (""); MATLAB labels them like any unit (its reset
# to NaN is behind `isfield(qMetric, 'nSpikes')`, false for the table it classifies); so does SpikeInterface.
UNLABELLED_EMPTY_UNITS = {PYTHON: True, MATLAB: False, SPIKEINTERFACE: False}
# SpikeInterface's label spelling -> Bombcell's.
SPIKEINTERFACE_LABELS = {"good": "GOOD", "mua": "MUA", "noise": "NOISE", "non_soma": "NON-SOMA",
                         "non_soma_good": "NON-SOMA GOOD", "non_soma_mua": "NON-SOMA MUA"}
# Each label's colour wherever one is drawn: the dock's title, the audit report's plots ("(empty)": no label).
LABEL_COLOURS = {"GOOD": "#2ca02c", "MUA": "#ff7f0e", "NOISE": "#d62728", "NON-SOMA": "#9467bd",
                 "NON-SOMA GOOD": "#9467bd", "NON-SOMA MUA": "#9467bd", "(empty)": "#dddddd"}

# -- SpikeInterface: rows made from a run's thresholds dict -----------------------------------------------
# bombcell_label_units: a section's metric fails outside its inclusive band [greater, less] (of |value| with
# "abs"). noise: a NaN fails too. mua: NaN is ignored but for the metrics below. non-somatic: (every width
# metric fails or is NaN) AND (any ratio metric fails), OR the main-peak ratio fails, OR every other metric of
# the section fails or is NaN.
SI_SECTIONS = {"noise": NOISE, "mua": MUA, "non-somatic": NONSOMATIC}
SI_NAN_FAILS = {"noise": None, "mua": {"sliding_rp_violation"}}  # None: every metric of the section
SI_WIDTHS = ("peak_before_width", "trough_width")
SI_RATIOS = ("peak_before_to_trough_ratio", "peak_before_to_peak_after_ratio")
SI_MAIN_PEAK = ("main_peak_to_trough_ratio",)
SI_SHAPE_GROUP, SI_EXTRA_GROUP = "si_shape", "si_extra"
GROUP_PHRASES[SI_SHAPE_GROUP] = "narrow peak and trough and a large peak ratio"
GROUP_PHRASES[SI_EXTRA_GROUP] = "every other non-somatic metric"
GROUP_TESTS[SI_SHAPE_GROUP] = "each width fails or is NaN, and a ratio fails"
GROUP_TESTS[SI_EXTRA_GROUP] = "each fails or is NaN"


def threshold_name(section: str, metric: str, side: str) -> str:
    """The parameter name of one SpikeInterface threshold: 'mua.amplitude_median.greater'."""
    return f"{section}.{metric}.{side}"


def _enabled(value) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def spikeinterface_rules(thresholds: dict, columns) -> tuple[tuple[Rule, ...], list[str]]:
    """The rows of SpikeInterface's classifier for a run's thresholds dict, and the thresholded metrics the
    table lacks (bombcell_label_units drops those thresholds)."""
    rules, dropped = [], []
    sections = {section: thresholds.get(section) or {} for section in SI_SECTIONS}
    shape = sections["non-somatic"]
    has_width = any(m in shape and m in columns and _band(shape[m]) for m in SI_WIDTHS)
    has_ratio = any(m in shape and m in columns and _band(shape[m]) for m in SI_RATIOS)
    for section, block in SI_SECTIONS.items():
        for metric, threshold in sections[section].items():
            if metric not in columns:
                dropped.append(metric)
                continue
            sides = _band(threshold)
            if not sides:
                continue
            common = {"absolute": bool(threshold.get("abs", False)), "classifiers": (SPIKEINTERFACE,)}
            nan_fails = section == "noise" or metric in (SI_NAN_FAILS.get(section) or ())
            if section == "non-somatic":
                if metric in SI_WIDTHS or metric in SI_RATIOS:
                    common["group"], nan_fails = SI_SHAPE_GROUP, metric in SI_WIDTHS
                    common["any_of"] = "ratio" if metric in SI_RATIOS else metric
                    if not (has_width and has_ratio):
                        common["never"] = ("this run has no " + ("width" if not has_width else "ratio") +
                                           " threshold, so SpikeInterface's narrow-and-large-ratio test never holds")
                elif metric not in SI_MAIN_PEAK:
                    common["group"], common["any_of"], nan_fails = SI_EXTRA_GROUP, metric, True
            for side, op in sides:
                rules.append(Rule(block, metric, op, threshold_name(section, metric, side), **common))
            if nan_fails:
                rules.append(Rule(block, metric, "isnan", None, **common))
    return tuple(rules), dropped


def _band(threshold: dict) -> list[tuple[str, str]]:
    """The enabled sides of a SpikeInterface threshold as (side, the comparison that fails)."""
    return [(side, op) for side, op in (("greater", "<"), ("less", ">")) if _enabled(threshold.get(side))]


def flatten_thresholds(thresholds: dict, columns=None) -> dict:
    """{'noise': {'snr': {'greater': 5}}} -> {'noise.snr.greater': 5} (enabled sides only, values as the run
    has them: bombcell_label_units compares them as they are). With ``columns``, only the metrics the table has
    (it drops the others' thresholds unread)."""
    return {threshold_name(section, metric, side): threshold[side]
            for section in SI_SECTIONS for metric, threshold in (thresholds.get(section) or {}).items()
            if columns is None or metric in columns for side, _ in _band(threshold)}


def unflatten_thresholds(thresholds: dict, params: dict) -> dict:
    """The run's thresholds dict with ``params``' values for its enabled sides (what-if edits)."""
    edited = {section: {metric: dict(threshold) for metric, threshold in metrics.items()}
              for section, metrics in thresholds.items()}
    for section, metrics in edited.items():
        for metric, threshold in metrics.items():
            for side, _ in _band(threshold):
                threshold[side] = params.get(threshold_name(section, metric, side), threshold[side])
    return edited


@cache
def rules_for(classifier: str) -> tuple[Rule, ...]:
    """The fixed rows of a classifier (SpikeInterface's come from each run: `spikeinterface_rules`)."""
    if classifier not in (PYTHON, MATLAB):
        raise ValueError(f"no fixed rule table for {classifier!r}")
    return tuple(rule for rule in RULES if classifier in rule.classifiers)


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name in names if name))


def switches_for(classifier: str, rules: tuple[Rule, ...] | None = None) -> tuple[str, ...]:
    """Every parameter switch the classifier's rules or its label combination read."""
    rules = rules_for(classifier) if rules is None else rules
    return _unique([name for rule in rules for flag, _ in rule.requires + rule.unless for name in flag.split("&")]
                   + [rule.exempt_when[0] for rule in rules if rule.exempt_when] + [SPLIT_SWITCHES[classifier]])


def thresholds_for(classifier: str, rules: tuple[Rule, ...] | None = None) -> tuple[str, ...]:
    """Threshold parameters the classifier's rules read, in table order."""
    return _unique(rule.param for rule in (rules_for(classifier) if rules is None else rules))


@cache
def metrics_for(classifier: str) -> tuple[str, ...]:
    """Metrics the classifier's rules read, in table order."""
    rules = rules_for(classifier)
    return _unique([rule.metric for rule in rules] + [rule.only_where_present for rule in rules]
                   + [rule.exempt_when[1] for rule in rules if rule.exempt_when] + ["nSpikes"])


# Every switch and threshold any classifier reads (what-if edits, key repair), and Python's metrics.
SWITCHES: tuple[str, ...] = _unique(name for c in (PYTHON, MATLAB) for name in switches_for(c))
THRESHOLDS: tuple[str, ...] = _unique(name for c in (PYTHON, MATLAB) for name in thresholds_for(c))
METRICS: tuple[str, ...] = metrics_for(PYTHON)
