"""Bombcell's classification rules as data: the single table every view reads, for every classifier.

Python Bombcell: `bombcell.quality_metrics.get_quality_unit_type` and `too_many_rpvs` (0.93-0.94).
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

PYTHON, MATLAB = "python", "matlab"
CLASSIFIERS = (PYTHON, MATLAB)
CLASSIFIER_TITLES = {
    PYTHON: "Python Bombcell (get_quality_unit_type, 0.93-0.94)",
    MATLAB: "MATLAB Bombcell (bc.qm.getQualityUnitType)",
}

# The four comparisons Bombcell ANDs together in its first non-somatic test.
PEAK_GROUP = "peak1ToPeak2"
GROUP_PHRASES = {PEAK_GROUP: "peak1/peak2 shape (all 4 group thresholds)"}

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
    classifiers: tuple[str, ...] = CLASSIFIERS

    @property
    def name(self) -> str:
        if self.op == "isnan":
            return f"isnan({self.metric})"
        return f"{self.metric}{self.op}{self.param}"


def _only(classifier: str, *rules: Rule, **changes) -> tuple[Rule, ...]:
    return tuple(replace(rule, classifiers=(classifier,), **changes) for rule in rules)


_LINEAR_FIT = (("computeSpatialDecay", True), ("spDecayLinFit", True))
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
    *_only(PYTHON, Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlope", requires=_LINEAR_FIT)),
    *_only(MATLAB, Rule(NOISE, "spatialDecaySlope", ">", "minSpatialDecaySlope", requires=_LINEAR_FIT)),
    # Exponential fit: Python needs computeSpatialDecay on; MATLAB's else-branch applies it whenever the
    # linear test does not.
    *_only(PYTHON, *_EXPONENTIAL_DECAY, requires=(("computeSpatialDecay", True), ("spDecayLinFit", False))),
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

# Switches that change how the blocks combine rather than which rules apply.
SPLIT_SWITCH = "splitGoodAndMua_NonSomatic"
# Units with nSpikes == 0: Python leaves them unlabelled (""); MATLAB labels them like any unit (its reset
# to NaN is behind `isfield(qMetric, 'nSpikes')`, false for the table it classifies).
UNLABELLED_EMPTY_UNITS = {PYTHON: True, MATLAB: False}


@cache
def rules_for(classifier: str) -> tuple[Rule, ...]:
    if classifier not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {classifier!r} (one of {', '.join(CLASSIFIERS)})")
    return tuple(rule for rule in RULES if classifier in rule.classifiers)


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name in names if name))


@cache
def switches_for(classifier: str) -> tuple[str, ...]:
    """Every parameter switch the classifier's rules or its label combination read."""
    rules = rules_for(classifier)
    return _unique([flag for rule in rules for flag, _ in rule.requires + rule.unless]
                   + [rule.exempt_when[0] for rule in rules if rule.exempt_when] + [SPLIT_SWITCH])


@cache
def thresholds_for(classifier: str) -> tuple[str, ...]:
    """Threshold parameters the classifier's rules read, in table order."""
    return _unique(rule.param for rule in rules_for(classifier))


@cache
def metrics_for(classifier: str) -> tuple[str, ...]:
    """Metrics the classifier's rules read, in table order."""
    rules = rules_for(classifier)
    return _unique([rule.metric for rule in rules] + [rule.only_where_present for rule in rules]
                   + [rule.exempt_when[1] for rule in rules if rule.exempt_when] + ["nSpikes"])


# Every switch and threshold any classifier reads (what-if edits, key repair), and Python's metrics.
SWITCHES: tuple[str, ...] = _unique(name for c in CLASSIFIERS for name in switches_for(c))
THRESHOLDS: tuple[str, ...] = _unique(name for c in CLASSIFIERS for name in thresholds_for(c))
METRICS: tuple[str, ...] = metrics_for(PYTHON)
