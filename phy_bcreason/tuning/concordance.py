"""The curator's labels against Bombcell's: agreement, the rules behind each disagreement, and thresholds that
would agree better, each found and checked by the engine (no heuristic, no second copy of a rule).

`three_way` sets the curator's labels, Bombcell's and UnitRefine's model's side by side, the units where the two
automatic curators disagree first.

Phy's groups are `good`, `mua` and `noise`. A Bombcell label agrees with the group it names; a non-somatic unit
agrees with `good` or `mua` by its MUA tests, as Bombcell's own split labels (NON-SOMA GOOD / NON-SOMA MUA) say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..core.engine import INACTIVE, Explanation, codes_with_threshold, labels_with_threshold, margin_text
from ..core.rules import MUA, NOISE, SPLIT_SWITCHES
from ..unitrefine.opinion import ModelOpinion, model_agrees

PHY_GROUPS = ("good", "mua", "noise")
LABEL_GROUPS = {"GOOD": "good", "MUA": "mua", "NOISE": "noise", "NON-SOMA GOOD": "good", "NON-SOMA MUA": "mua"}


def read_groups(path) -> dict[int, str]:
    """Phy's cluster_group.tsv (or any TSV with cluster_id and group): the clusters labelled good/mua/noise."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    column = "group" if "group" in table.columns else table.columns[-1]
    return {int(float(c)): g.strip().lower() for c, g in zip(table["cluster_id"], table[column])
            if g.strip().lower() in PHY_GROUPS}


# Bombcell's numeric unit types with non-somatic units split (noise, good, mua, non-soma good, non-soma mua) ->
# the index in PHY_GROUPS of the group they agree with; empty units (NaN) agree with none (-1).
GROUP_OF_CODE = np.array([2, 0, 1, 0, 1], dtype=np.int8)


def group_indices(explanation: Explanation, rows=None, param: str | None = None, candidates=None) -> np.ndarray:
    """Index in PHY_GROUPS of the group each unit's Bombcell label agrees with (-1 for empty units), with
    threshold ``param`` at each of ``candidates`` ([candidate, unit]) or as it is ([1, unit])."""
    rows = np.arange(len(explanation.cluster_ids)) if rows is None else rows
    split = {**explanation.params, SPLIT_SWITCHES[explanation.classifier]: True}
    values = np.array([np.nan]) if candidates is None else candidates
    codes = codes_with_threshold(replace(explanation, params=split), param, values, rows)
    return np.where(np.isfinite(codes), GROUP_OF_CODE[np.nan_to_num(codes).astype(np.int8)], -1)


def bombcell_groups(explanation: Explanation, rows=None) -> np.ndarray:
    """The Phy group each unit's Bombcell label agrees with ('' for empty units)."""
    return np.array([*PHY_GROUPS, ""], dtype=object)[group_indices(explanation, rows)[0]]


def _indices(groups) -> np.ndarray:
    return np.array([PHY_GROUPS.index(g) for g in groups], dtype=np.int8)


@dataclass
class Concordance:
    cluster_ids: np.ndarray   # the labelled clusters Bombcell has a row for
    user: np.ndarray          # their Phy group
    bombcell: np.ndarray      # the group Bombcell's label agrees with
    table: pd.DataFrame       # counts: rows = Bombcell's group, columns = the user's
    disagreements: list[dict] = field(default_factory=list)

    @property
    def agree(self) -> int:
        return int((self.user == self.bombcell).sum())


def concordance(explanation: Explanation, groups: dict[int, str]) -> Concordance:
    rows = np.array([explanation.rows[c] for c in groups if c in explanation.rows and not
                     explanation.undetermined[explanation.rows[c]]], dtype=np.int64)
    ids = explanation.cluster_ids[rows]
    user = np.array([groups[int(c)] for c in ids], dtype=object)
    ours = bombcell_groups(explanation, rows=rows)
    table = pd.crosstab(pd.Categorical(ours, categories=PHY_GROUPS), pd.Categorical(user, categories=PHY_GROUPS),
                        rownames=["bombcell"], colnames=["user"], dropna=False)
    result = Concordance(ids, user, ours, table)
    for row, cluster_id, theirs, bc in zip(rows, ids, user, ours):
        if theirs != bc:
            result.disagreements.append({"cluster_id": int(cluster_id), "user": theirs, "bombcell": bc,
                                         "label": str(explanation.labels[row]),
                                         "rules": why_different(explanation, int(row), theirs, bc)})
    return result


def why_different(explanation: Explanation, row: int, user: str, bombcell: str) -> list[str]:
    """The comparisons that made Bombcell's group differ from the user's: the failing tests of the block that
    decided Bombcell's (noise, MUA), or, where Bombcell kept the unit, the nearest test of the block that
    would have given the user's group (with its margin)."""
    rules, status, margins = explanation.rules, explanation.status[row], explanation.margins[row]
    held = explanation.holds[row] & explanation.applies[row]
    worse = {"good": 0, "mua": 1, "noise": 2}
    if worse[bombcell] > worse[user]:  # Bombcell rejected more than the user: the tests that failed
        block = NOISE if bombcell == "noise" else MUA
        return [rules[j].name for j in np.flatnonzero(held) if rules[j].block == block]
    block = NOISE if user == "noise" else MUA  # Bombcell kept it: the test nearest to agreeing with the user
    candidates = [(margins[j], j) for j in range(len(rules))
                  if rules[j].block == block and np.isfinite(margins[j]) and status[j] != INACTIVE]
    if not candidates:
        return []
    margin, j = min(candidates)
    return [f"{rules[j].name} (passes by {margin_text(margin)})"]


@dataclass
class Suggestion:
    param: str
    current: float
    suggested: float
    agree_before: int
    agree_after: int
    n_labelled: int
    flips: dict[str, int]  # 'GOOD -> MUA': units, over every unit of the folder
    flipped: dict[int, str] = field(default_factory=dict)  # cluster id -> 'GOOD -> MUA'

    @property
    def net(self) -> int:
        return self.agree_after - self.agree_before


def active_thresholds(explanation: Explanation) -> list[str]:
    return list(dict.fromkeys(r.param for j, r in enumerate(explanation.rules)
                              if r.param and j not in explanation.inactive
                              and r.param not in explanation.missing_thresholds))


def candidate_values(explanation: Explanation, param: str, rows: np.ndarray) -> np.ndarray:
    """Every value the labelled units take on the thresholded metric, one beyond each end, and the current
    threshold: every place a threshold can be that changes which labelled units fail."""
    columns = [j for j, r in enumerate(explanation.rules) if r.param == param]
    values = explanation.values[np.ix_(rows, columns)].ravel()
    values = np.unique(values[np.isfinite(values)])
    current = float(explanation.params[param])
    if not len(values):
        return np.array([current])
    step = max(abs(values[-1] - values[0]) * 1e-6, 1e-12)
    return np.unique(np.r_[values[0] - step, values, values[-1] + step, current])


def suggest(explanation: Explanation, groups: dict[int, str], params: list[str] | None = None,
            rows: np.ndarray | None = None) -> list[Suggestion]:
    """For each active threshold, the value that agrees most with the user's groups, the others held (ties: the
    one nearest the current value), when it agrees with more units than the current one."""
    if rows is None:
        rows = np.array([explanation.rows[c] for c in groups if c in explanation.rows], dtype=np.int64)
    user = _indices([groups[int(c)] for c in explanation.cluster_ids[rows]])
    before = int((group_indices(explanation, rows)[0] == user).sum())
    suggestions = []
    for param in params or active_thresholds(explanation):
        current = float(explanation.params[param])
        candidates = candidate_values(explanation, param, rows)
        agree = (group_indices(explanation, rows, param, candidates) == user[None]).sum(axis=1)
        best = int(np.lexsort((np.abs(candidates - current), -agree))[0])
        if agree[best] > before:
            everyone = np.arange(len(explanation.cluster_ids))
            after = labels_with_threshold(explanation, param, candidates[[best]], everyone)[0]
            flipped = {int(c): f"{old or '(empty)'} -> {new or '(empty)'}"
                       for c, old, new in zip(explanation.cluster_ids, explanation.rule_labels, after) if old != new}
            suggestions.append(Suggestion(param, current, float(candidates[best]), before, int(agree[best]),
                                          len(rows), dict(Counter(flipped.values()).most_common()), flipped))
    return sorted(suggestions, key=lambda s: -s.net)


@dataclass
class JointSuggestion:
    overrides: dict            # param -> value
    agree_before: int
    agree_after: int
    n_labelled: int
    held_out_before: float     # agreement on held-out labels, current thresholds (fraction)
    held_out_after: float      # the same, thresholds fitted without those labels
    flips: dict[str, int]


def _fit_jointly(results, groups: dict[int, str], rows_of, rounds: int) -> dict:
    """Coordinate ascent: move the threshold that gains most, again and again, until no move gains."""
    from ..core.judge import explain

    overrides: dict = {}
    for _ in range(rounds * 8):
        explanation = explain(results, overrides, check=False)
        moves = suggest(explanation, groups, rows=rows_of(explanation))
        if not moves:
            break
        overrides[moves[0].param] = moves[0].suggested
    return overrides


def suggest_jointly(results, groups: dict[int, str], folds: int = 5, rounds: int = 3, seed: int = 0
                    ) -> JointSuggestion:
    """Several thresholds moved together, and how well that generalises: fitted on all labels, and on each
    of ``folds`` parts of them held out in turn, measured on the held-out part (so a handful of labels cannot
    claim a threshold fitted to noise)."""
    from ..core.judge import explain

    saved = explain(results, check=False)
    labelled = [c for c in groups if c in saved.rows and not saved.undetermined[saved.rows[c]]]
    groups = {c: groups[c] for c in labelled}

    def rows_of(explanation, ids=labelled):
        return np.array([explanation.rows[c] for c in ids], dtype=np.int64)

    overrides = _fit_jointly(results, groups, rows_of, rounds)
    fitted = explain(results, overrides, check=False)
    user = np.array([groups[c] for c in labelled], dtype=object)
    before = int((bombcell_groups(saved, rows=rows_of(saved)) == user).sum())
    after = int((bombcell_groups(fitted, rows=rows_of(fitted)) == user).sum())
    order = np.random.default_rng(seed).permutation(len(labelled))
    agree_before = agree_after = 0
    for part in np.array_split(order, min(folds, len(labelled))) if labelled else []:
        test = [labelled[i] for i in part]
        train = {c: groups[c] for c in labelled if c not in set(test)}
        fold_overrides = _fit_jointly(results, train, lambda e, ids=list(train): rows_of(e, ids), rounds)
        fold = explain(results, fold_overrides, check=False)
        truth = np.array([groups[c] for c in test], dtype=object)
        agree_before += int((bombcell_groups(saved, rows=rows_of(saved, test)) == truth).sum())
        agree_after += int((bombcell_groups(fold, rows=rows_of(fold, test)) == truth).sum())
    n = max(len(labelled), 1)
    flips = Counter(f"{old or '(empty)'} -> {new or '(empty)'}"
                    for old, new in zip(saved.rule_labels, fitted.rule_labels) if old != new)
    return JointSuggestion(overrides, before, after, len(labelled), agree_before / n, agree_after / n,
                           dict(flips.most_common()))


USER_AS_LABEL = {"good": "GOOD", "mua": "MUA", "noise": "NOISE"}
THREE_WAY_COLUMNS = ["cluster_id", "user", "bombcell", "model", "confidence", "model_agrees", "user_agrees_model"]


def three_way(explanation: Explanation, groups: dict[int, str], opinion: ModelOpinion) -> pd.DataFrame:
    """One row per cluster Bombcell labelled: your Phy group ('' when unlabelled), Bombcell's label, the model's
    label and confidence ('' and NaN where the model has not seen the cluster), whether the model agrees with
    Bombcell and with you (`model_agrees`: empty where the model was not asked). The clusters where Bombcell and
    the model disagree come first, then those it could not compare, then those they agree on (each by id)."""
    rows = []
    for cluster_id, label in zip(explanation.cluster_ids.tolist(), explanation.labels.tolist()):
        unit = opinion.units.get(int(cluster_id))
        user = groups.get(int(cluster_id), "")
        model = unit.label if unit else ""
        rows.append((int(cluster_id), user, str(label), model, unit.confidence if unit else np.nan,
                     model_agrees(model or None, str(label), classes=opinion.classes),
                     model_agrees(model or None, USER_AS_LABEL.get(user), classes=opinion.classes)))
    table = pd.DataFrame(rows, columns=THREE_WAY_COLUMNS)
    order = table["model_agrees"].map({False: 0, None: 1, True: 2}).fillna(1)
    return table.assign(_order=order).sort_values(["_order", "cluster_id"], kind="stable").drop(columns="_order"
                                                                                               ).reset_index(drop=True)
