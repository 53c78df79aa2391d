"""Bombcell's classification rules as data: the single table every view reads.

Transcribed from `bombcell.quality_metrics.get_quality_unit_type` and `too_many_rpvs` (Bombcell 0.93-0.94).
How the blocks combine into a label lives in `engine.py`; nothing else may restate a rule.
"""

from __future__ import annotations

from dataclasses import dataclass

NOISE = "noise"
NONSOMATIC = "nonsomatic"
MUA = "mua"
BLOCKS = (NOISE, NONSOMATIC, MUA)
BLOCK_TITLES = {NOISE: "NOISE", NONSOMATIC: "NON-SOMATIC", MUA: "MUA"}

# The four comparisons Bombcell ANDs together in its first non-somatic test.
PEAK_GROUP = "peak1ToPeak2"
GROUP_PHRASES = {PEAK_GROUP: "peak1/peak2 shape (all 4 group thresholds)"}


@dataclass(frozen=True)
class Rule:
    """One comparison of Bombcell's classifier.

    The rule *fires* when ``metric op threshold`` holds (``op`` is '>' or '<'), or when the metric is NaN
    (``op == 'isnan'``). A unit failing a rule is what pushes it into the rule's block.
    """

    block: str
    metric: str
    op: str
    param: str | None
    # Parameter switches that must be on (True) or off (False) for Bombcell to apply the rule at all.
    requires: tuple[tuple[str, bool], ...] = ()
    # Rules sharing a group only count when every member fires (Bombcell ANDs them).
    group: str | None = None
    # Bombcell skips the rule for units where this metric is NaN.
    only_where_present: str | None = None
    # (switch, metric, value): with the switch on, units whose metric equals value are exempt.
    exempt_when: tuple[str, str, float] | None = None
    # Readable phrase for the reason text, where the comparison itself says too little.
    phrase: str | None = None

    @property
    def name(self) -> str:
        if self.op == "isnan":
            return f"isnan({self.metric})"
        return f"{self.metric}{self.op}{self.param}"


def _switch(*flags: tuple[str, bool]) -> tuple[tuple[str, bool], ...]:
    return tuple(flags)


RULES: tuple[Rule, ...] = (
    # NOISE: any one fires (units with nSpikes == 0 are never noise).
    Rule(NOISE, "nPeaks", "isnan", None, phrase="too few spikes to measure a waveform (nPeaks is NaN)"),
    Rule(NOISE, "nPeaks", ">", "maxNPeaks"),
    Rule(NOISE, "nTroughs", ">", "maxNTroughs"),
    Rule(NOISE, "waveformDuration_peakTrough", "<", "minWvDuration"),
    Rule(NOISE, "waveformDuration_peakTrough", ">", "maxWvDuration"),
    Rule(NOISE, "waveformBaselineFlatness", ">", "maxWvBaselineFraction"),
    Rule(NOISE, "scndPeakToTroughRatio", ">", "maxScndPeakToTroughRatio_noise"),
    Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlope",
         requires=_switch(("computeSpatialDecay", True), ("spDecayLinFit", True))),
    Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlopeExp",
         requires=_switch(("computeSpatialDecay", True), ("spDecayLinFit", False))),
    Rule(NOISE, "spatialDecaySlope", ">", "maxSpatialDecaySlopeExp",
         requires=_switch(("computeSpatialDecay", True), ("spDecayLinFit", False))),
    # NON-SOMATIC: (all four of the peak group) or the main peak/trough ratio.
    Rule(NONSOMATIC, "troughToPeak2Ratio", "<", "minTroughToPeak2Ratio_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainPeak_before_width", "<", "minWidthFirstPeak_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainTrough_width", "<", "minWidthMainTrough_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "peak1ToPeak2Ratio", ">", "maxPeak1ToPeak2Ratio_nonSomatic", group=PEAK_GROUP),
    Rule(NONSOMATIC, "mainPeakToTroughRatio", ">", "maxMainPeakToTroughRatio_nonSomatic"),
    # MUA: any one fires, for units that are not noise.
    Rule(MUA, "percentageSpikesMissing_gaussian", ">", "maxPercSpikesMissing"),
    Rule(MUA, "nSpikes", "<", "minNumSpikes"),
    Rule(MUA, "fractionRPVs_estimatedTauR", ">", "maxRPVviolations",
         exempt_when=("keepUncertainRPVUnits", "RPV_status", 0)),
    Rule(MUA, "presenceRatio", "<", "minPresenceRatio"),
    Rule(MUA, "rawAmplitude", "<", "minAmplitude",
         requires=_switch(("extractRaw", True)), only_where_present="rawAmplitude"),
    Rule(MUA, "signalToNoiseRatio", "<", "minSNR",
         requires=_switch(("extractRaw", True)), only_where_present="rawAmplitude"),
    Rule(MUA, "maxDriftEstimate", ">", "maxDrift", requires=_switch(("computeDrift", True))),
    Rule(MUA, "isolationDistance", "<", "isoDmin", requires=_switch(("computeDistanceMetrics", True))),
    Rule(MUA, "Lratio", ">", "lratioMax", requires=_switch(("computeDistanceMetrics", True))),
)

# Switches that change how the blocks combine rather than which rules apply.
SPLIT_SWITCH = "splitGoodAndMua_NonSomatic"

# Every parameter switch the table or the label combination reads (for what-if toggles and the dock).
SWITCHES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [flag for rule in RULES for flag, _ in rule.requires]
        + [rule.exempt_when[0] for rule in RULES if rule.exempt_when]
        + [SPLIT_SWITCH]
    )
)

# Threshold parameters the table reads, in table order.
THRESHOLDS: tuple[str, ...] = tuple(dict.fromkeys(rule.param for rule in RULES if rule.param))

# Metrics the table reads, in table order, without repeats.
METRICS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [rule.metric for rule in RULES]
        + [rule.only_where_present for rule in RULES if rule.only_where_present]
        + [rule.exempt_when[1] for rule in RULES if rule.exempt_when]
        + ["nSpikes"]
    )
)
