"""The audit's self-contained HTML report: tables and matplotlib plots embedded as base64 PNGs, no network asset.

Sections: the folders (units per label, unreadable ones), labels per folder, decisive rules per folder (a heat
map), units within 10% of a threshold, each rule's metric distribution per folder with its threshold, the
methods paragraph of each folder, and optionally comparisons of two runs (`compare --html`). `write_audit`
writes it beside the audit's tables.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import DECISIVE
from ..core.rules import LABEL_COLOURS
from .audit import NEAR, UNREADABLE, Audit, label_order, nearest_rules
from .compare import describe_causes
from .methods import methods_paragraph

UNITS_FILE, RULES_FILE, FOLDERS_FILE, REPORT_FILE = "units.tsv", "rules.tsv", "folders.tsv", "report.html"

MAX_DISTRIBUTION_FOLDERS = 40  # per-rule strip plots: beyond this many folders only the first ones are drawn
MAX_NEAR_ROWS = 300

STYLE = """
body { font-family: -apple-system, "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; max-width: 45em; overflow-wrap: anywhere; }
th { background: #f3f3f3; } td.t, th.t { text-align: left; }
tr.bad td { background: #fde8e8; }
.error { color: #b00020; } .note { color: #555; font-size: .9em; }
img { max-width: 100%; border: 1px solid #eee; margin: .3em 0; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } .grid figure { margin: 0; }
figcaption { font-size: .85em; color: #444; }
p.methods { background: #f8f8f8; padding: .7em; border-left: 3px solid #999; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="plot" alt="plot" src="data:image/png;base64,{data}">'


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _esc(value) -> str:
    return html.escape(str(value))


def _table(frame: pd.DataFrame, text_columns=(), row_class=None) -> str:
    head = "".join(f'<th class="{"t" if c in text_columns else ""}">{_esc(c)}</th>' for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        cells = "".join(f'<td class="{"t" if c in text_columns else ""}">{_esc(_cell(row[c]))}</td>'
                        for c in frame.columns)
        rows.append(f"<tr{cls}>{cells}</tr>")
        del i
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3g}"
    if value is pd.NA:
        return ""
    return str(value)


def _key(result) -> str:
    return f"{result.target.folder} [{result.target.run}]"


def labels_plot(audit) -> str:
    ok = audit.ok
    counts = pd.DataFrame([pd.Series(r.explanation.labels).replace("", "(empty)").value_counts() for r in ok],
                          index=[_key(r) for r in ok]).fillna(0)
    counts = counts[label_order(list(counts.columns))]
    fig, ax = _figure(9, 0.9 + 0.28 * len(counts))
    left = np.zeros(len(counts))
    y = np.arange(len(counts))
    for label in counts.columns:
        ax.barh(y, counts[label], left=left, color=LABEL_COLOURS.get(label, None), label=label)
        left += counts[label].to_numpy()
    ax.set_yticks(y, counts.index, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("units")
    ax.set_title("Labels per folder")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png(fig)


def decisive_matrix(audit) -> pd.DataFrame:
    rows = {}
    for r in audit.ok:
        e = r.explanation
        counts = (e.status == DECISIVE).sum(axis=0)
        rows[_key(r)] = {rule.name: int(n) for rule, n in zip(e.rules, counts)}
    matrix = pd.DataFrame(rows).fillna(0).astype(int)
    matrix = matrix.loc[matrix.sum(axis=1) > 0]
    return matrix.loc[matrix.sum(axis=1).sort_values(ascending=False).index]


def decisive_plot(audit) -> str:
    matrix = decisive_matrix(audit)
    if matrix.empty:
        return '<p class="note">No unit failed a rule in any folder.</p>'
    folders, rules = matrix.columns, matrix.index
    fig, ax = _figure(2.5 + 0.45 * len(rules), 1.5 + 0.3 * len(folders))
    data = matrix.T.to_numpy()
    image = ax.imshow(data, aspect="auto", cmap="Reds")
    ax.set_xticks(np.arange(len(rules)), rules, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(folders)), folders, fontsize=8)
    if data.size <= 2500:
        for (i, j), n in np.ndenumerate(data):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if n > data.max() * 0.6 else "black")
    fig.colorbar(image, ax=ax, label="units the rule decided", fraction=0.03)
    ax.set_title("Decisive rules per folder (units whose label the rule decided)")
    return _png(fig)


def near_plot(audit) -> str:
    rows = {}
    for r in audit.ok:
        e = r.explanation
        near = np.isfinite(e.flip_margins) & (np.abs(np.nan_to_num(e.flip_margins, nan=np.inf)) <= NEAR)
        rows[_key(r)] = pd.Series(nearest_rules(e)[near]).value_counts()
    counts = pd.DataFrame(rows).fillna(0).T
    if counts.empty or counts.to_numpy().sum() == 0:
        return '<p class="note">No unit is within 10% of a threshold.</p>'
    counts = counts.reindex([_key(r) for r in audit.ok]).fillna(0)
    fig, ax = _figure(9, 1.2 + 0.28 * len(counts))
    left = np.zeros(len(counts))
    y = np.arange(len(counts))
    cmap = __import__("matplotlib").colormaps["tab20"]
    for k, rule in enumerate(counts.columns):
        ax.barh(y, counts[rule], left=left, color=cmap(k % 20), label=rule)
        left += counts[rule].to_numpy()
    ax.set_yticks(y, counts.index, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"units whose label a {NEAR:.0%} change of one threshold would flip")
    ax.set_title("Units within 10% of a threshold, by the rule nearest to flipping them")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png(fig)


def near_table(audit) -> str:
    units = audit.units
    if units.empty:
        return ""
    near = units[units["margin"].abs() <= NEAR].sort_values(["folder", "run", "cluster_id"])
    shown = near.head(MAX_NEAR_ROWS)[["folder", "run", "cluster_id", "label", "nearest_rule", "margin", "reason"]]
    more = f'<p class="note">{len(near) - len(shown)} more in units.tsv.</p>' if len(near) > len(shown) else ""
    return _table(shown, text_columns=("folder", "run", "label", "nearest_rule", "reason")) + more


def distribution_plots(audit) -> str:
    """One strip plot per rule: the metric of every unit of each folder (colour: label), the threshold of each
    folder in red (thresholds may differ between runs)."""
    import matplotlib.pyplot as plt

    ok = audit.ok[:MAX_DISTRIBUTION_FOLDERS]
    rules: dict[tuple, dict] = {}
    for r in ok:
        e = r.explanation
        for j, rule in enumerate(e.rules):
            if rule.op == "isnan" or j in e.inactive:
                continue
            entry = rules.setdefault((rule.block, rule.name), {"rule": rule, "folders": []})
            values = e.values[:, j]
            entry["folders"].append((_key(r), values, e.thresholds[j], np.asarray(e.labels)))
    figures = []
    rng = np.random.default_rng(0)
    for (_block, name), entry in rules.items():
        folders = entry["folders"]
        every = np.concatenate([v for _, v, _, _ in folders])
        finite = every[np.isfinite(every)]
        if not len(finite):
            continue
        fig, ax = _figure(5.2, 0.9 + 0.3 * len(folders))
        positive = finite[finite > 0]
        if len(positive) == len(finite) and positive.max() / max(positive.min(), 1e-300) > 1e3:
            ax.set_xscale("log")
        xs, ys, colours, tx, ty = [], [], [], [], []  # one scatter and one line per plot: fast for many folders
        for i, (_folder, values, threshold, labels) in enumerate(folders):
            keep = np.isfinite(values)
            xs.append(values[keep])
            ys.append(i + rng.uniform(-0.25, 0.25, keep.sum()))
            colours += [LABEL_COLOURS.get(label or "(empty)", "#333") for label in labels[keep]]
            if np.isfinite(threshold):
                tx += [threshold, threshold, np.nan]
                ty += [i - 0.42, i + 0.42, np.nan]
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=9, c=colours, alpha=0.8, linewidths=0)
        if tx:
            ax.plot(tx, ty, color="red", lw=2)
        ax.set_yticks(np.arange(len(folders)), [f for f, _, _, _ in folders], fontsize=7)
        ax.set_ylim(len(folders) - 0.5, -0.5)
        ax.set_title(f"{entry['rule'].block}: {name}", fontsize=9)
        ax.set_xlabel(entry["rule"].metric + ("  (red: threshold)" if entry["rule"].param else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        figures.append(f"<figure>{_png(fig)}<figcaption>{_esc(name)}</figcaption></figure>")
        plt.close("all")
    more = ""
    if len(audit.ok) > len(ok):
        more = (f'<p class="note">Only the first {len(ok)} of {len(audit.ok)} folders are drawn here; every value '
                "is in rules.tsv.</p>")
    legend = " ".join(f'<span style="color:{c}">&#9679; {_esc(label)}</span>' for label, c in LABEL_COLOURS.items())
    return f'<p class="note">Point colour: label. {legend}</p>{more}<div class="grid">{"".join(figures)}</div>'


def comparison_html(comparison) -> str:
    parameters = pd.DataFrame(comparison.parameters or [], columns=["name", "a", "b", "read_by_rules"])
    changes = pd.DataFrame([{"cluster_id": c["cluster_id"], "from": c["from"] or "(empty)", "to": c["to"] or "(empty)",
                             "because": describe_causes(c)} for c in comparison.changes],
                           columns=["cluster_id", "from", "to", "because"])
    parts = [f"<h3>{_esc(comparison.a)} &rarr; {_esc(comparison.b)}</h3>",
             f'<p class="note">{_esc(comparison.classifier)}</p>',
             "<h4>Parameters that differ</h4>",
             _table(parameters, text_columns=("name", "a", "b", "read_by_rules")) if len(parameters)
             else "<p>none</p>",
             f"<h4>Units whose label changed: {len(comparison.changes)} ({_esc(comparison.summary())})</h4>",
             _table(changes, text_columns=("from", "to", "because")) if len(changes) else ""]
    if comparison.only_in_a or comparison.only_in_b:
        parts.append(f'<p class="note">Only in A: {_esc(comparison.only_in_a)}; only in B: '
                     f"{_esc(comparison.only_in_b)}</p>")
    parts += [f'<p class="note">note: {_esc(n)}</p>' for n in comparison.notes]
    return "\n".join(parts)


# Once the page has loaded, the body says how many of its plots decoded (read by the test in a headless browser).
CHECK_SCRIPT = """<script>window.addEventListener("load", function () {
  var images = document.images, decoded = 0;
  for (var i = 0; i < images.length; i++) { if (images[i].complete && images[i].naturalWidth > 0) decoded++; }
  document.body.setAttribute("data-images-decoded", decoded + "/" + images.length);
});</script>"""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{_esc(title)}</h1>\n{body}\n{CHECK_SCRIPT}\n</body></html>\n")


def audit_html(audit, title: str = "Bombcell audit", comparisons=()) -> str:
    folders = audit.folders
    shown = folders.drop(columns=[c for c in folders.columns if c.startswith("decisive:")
                                  or c in ("ks_dir", "results_dir")])
    shown.columns = [c[6:] if c.startswith("label:") else c for c in shown.columns]
    n_units = sum(len(r.explanation.labels) for r in audit.ok)
    body = [f'<p>{len(audit.ok)} of {len(audit.results)} Bombcell runs audited ({n_units} units), '
            f'{len(audit.failed)} unreadable; made by phy-bcreason on {time.strftime("%Y-%m-%d %H:%M")}. '
            "Tables: units.tsv (one row per unit), rules.tsv (one row per unit and rule), folders.tsv.</p>"]
    if audit.failed:
        body.append("<h2>Unreadable folders</h2><ul>" + "".join(
            f'<li class="error"><b>{_esc(_key(r))}</b>: {_esc(r.error)}</li>' for r in audit.failed) + "</ul>")
    body += ["<h2>Folders</h2>",
             _table(shown, text_columns=("folder", "run", "status", "classifier", "error"),
                    row_class=lambda row: "bad" if row["status"] == UNREADABLE else "")]
    if audit.ok:
        body += ["<h2>Labels per folder</h2>", labels_plot(audit),
                 "<h2>Decisive rules per folder</h2>", decisive_plot(audit),
                 "<h2>Units within 10% of a threshold</h2>",
                 '<p class="note">The comparison nearest to changing the label is within 10% of its threshold '
                 "(|margin| &le; 0.1): failing units that would pass, or GOOD units that would fail.</p>",
                 near_plot(audit), near_table(audit),
                 "<h2>Metric distributions per folder</h2>", distribution_plots(audit)]
    if comparisons:
        body.append("<h2>Comparisons of two runs</h2>")
        body += [comparison_html(c) for c in comparisons]
    if audit.ok:
        body.append("<h2>Methods</h2>")
        paragraphs: dict[str, list[str]] = {}
        for r in audit.ok:
            paragraphs.setdefault(methods_paragraph(r.explanation), []).append(_key(r))
        for text, keys in paragraphs.items():
            body.append(f'<p class="note">{_esc(", ".join(keys))}</p><p class="methods">{_esc(text)}</p>')
    return page(title, "\n".join(body))


def write_audit(audit: Audit, out: Path, report: bool = True, title: str = "Bombcell audit", comparisons=()
                ) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in ((UNITS_FILE, audit.units), (RULES_FILE, audit.rules), (FOLDERS_FILE, audit.folders)):
        table.to_csv(out / name, sep="\t", index=False, encoding="utf-8", lineterminator="\n")
        written.append(out / name)
    if report:
        (out / REPORT_FILE).write_text(audit_html(audit, title=title, comparisons=comparisons), encoding="utf-8",
                                       newline="\n")
        written.append(out / REPORT_FILE)
    return written
