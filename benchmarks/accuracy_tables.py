"""The accuracy benchmark's summaries: mean and std over seeds per setting, backend, method and
epochs, every routing rule's figures, and the markdown table (results.md) made from them."""

from __future__ import annotations

import numpy as np

from benchmarks.baselines import DENSE_METHODS
from mind_core.routing import PAPER_RULE, ROUTINGS


def run_key(row: dict) -> tuple:
    return row["setting"], row["backend"], row["method"], row["seed"]


def worst_student_gap(runs: list[dict]) -> float | None:
    """The largest (teacher - student) test accuracy on a task, over every task of every run;
    None where no run recorded its teachers (variants without one, older runs)."""
    gaps = [teacher - student for r in runs if r.get("teacher_taw") and r.get("student_taw")
            for teacher, student in zip(r["teacher_taw"], r["student_taw"], strict=True)
            if teacher is not None and student is not None]
    return max(gaps) if gaps else None


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per setting, backend, method and epochs: runs at other epochs (another
    --epochs-scale, merged in) are never averaged together."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if "error" not in row:
            groups.setdefault((*run_key(row)[:3], tuple(row["epochs"])), []).append(row)
    out = []
    for (setting, backend, method, epochs), runs in groups.items():
        entry = {"setting": setting, "backend": backend, "method": method,
                 "epochs": list(epochs), "runs": len(runs),
                 "seconds_mean": round(float(np.mean([r["seconds"] for r in runs])), 1)}
        for metric in ("tag", "taw", "routing", "tag_entropy"):
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std(
                [r["final"][metric] for r in runs])
        entry["forgetting_tag_mean"] = mean_std([r["forgetting_tag"] for r in runs])[0]
        entry["worst_student_gap"] = worst_student_gap(runs)
        entry["rules"] = rule_summary(runs)
        entry["routing_rule"] = ", ".join(sorted({run_rule(r) for r in runs}))
        if method in DENSE_METHODS:
            entry["routing_rule"] = "one head"
        out.append(entry)
    return out


def run_rule(row: dict) -> str:
    """The rule a run routed its headline TAg with. Rows written before it was recorded: the
    rule whose scores are the headline's (the paper's max_prob on a tie; dense baselines
    have no rule)."""
    if "routing_rule" in row:
        return row["routing_rule"]
    final = row["final"]
    matching = [name for name, v in final.get("rules", {}).items()
                if v["tag"] == final["tag"] and v["routing"] == final["routing"]]
    return PAPER_RULE if not matching or PAPER_RULE in matching else matching[0]


def rule_summary(runs: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Mean and std of every routing rule's routing accuracy and TAg, for the rules every
    run scored (runs made before a rule existed leave it out)."""
    scored = [set(r["final"].get("rules", {})) for r in runs]
    common = [name for name in ROUTINGS if scored and all(name in s for s in scored)]
    return {name: {key: list(mean_std([r["final"]["rules"][name][key] for r in runs]))
                   for key in ("routing", "tag")} for name in common}


def invocations(meta: dict) -> list[dict]:
    """The metas of the invocations behind a results file (one, or several merged)."""
    return meta.get("merged", [meta])


def markdown(results: dict) -> str:
    metas = invocations(results["meta"])
    lines = ["# MIND accuracy benchmark", "",
             "Final accuracy after the last task, mean ± std over seeds (%). TAg and routing "
             "use each run's own routing rule (column `rule`: runs made before the default "
             "became mahalanobis used the paper's max_prob), TAg (entropy) the paper's entropy "
             "rule; the table under a setting scores every rule on the same runs. Forgetting "
             "is the TAg average; worst gap is the most a task's student ended below its "
             "teacher (TAw on its test data, any task of any seed; – where not recorded); "
             "epochs are teacher+distill per task. Made by:", ""]
    for m in metas:
        where = ", ".join(str(m[k]) for k in ("device", "machine", "started") if k in m)
        lines.append(f"- `{m['command']}` ({where})")
    lines.append("")
    by_table: dict[tuple, list[dict]] = {}
    for entry in results["summary"]:
        by_table.setdefault((entry["setting"], entry["backend"]), []).append(entry)
    for (setting, backend), entries in by_table.items():
        lines += [f"## {setting} ({backend})", "",
                  "| method | rule | TAg | TAw | routing | TAg (entropy) | forgetting | worst gap "
                  "| epochs | runs | s/run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in entries:
            cells = [f"{100 * e[f'{m}_mean']:.2f} ± {100 * e[f'{m}_std']:.2f}"
                     for m in ("tag", "taw", "routing", "tag_entropy")]
            epochs = "+".join(str(v) for v in e["epochs"])
            gap = e.get("worst_student_gap")
            gap_cell = "–" if gap is None else f"{100 * gap:.1f}"
            lines.append(f"| {e['method']} | {e.get('routing_rule', '')} | "
                         f"{' | '.join(cells)} | "
                         f"{100 * e['forgetting_tag_mean']:.2f} | {gap_cell} | {epochs} | "
                         f"{e['runs']} | "
                         f"{e['seconds_mean']} |")
        lines.append("")
        lines += rules_markdown(entries)
    errors = [r for r in results["runs"] if "error" in r]
    if errors:
        lines += ["## Failed runs", ""] + [f"- {r['setting']} {r['backend']} {r['method']} "
                                          f"seed {r['seed']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def rules_markdown(entries: list[dict]) -> list[str]:
    """Every routing rule on the same trained runs (evaluation only, no retraining)."""
    with_rules = [e for e in entries if e.get("rules") and e["method"] not in DENSE_METHODS]
    if not with_rules:
        return []
    lines = ["Routing rules, evaluated on the same runs (routing accuracy / TAg, %):", "",
             "| method | " + " | ".join(ROUTINGS) + " |", "|---" * (len(ROUTINGS) + 1) + "|"]
    for e in with_rules:
        cells = []
        for name in ROUTINGS:
            if name in e["rules"]:
                values = e["rules"][name]
                cells.append(f"{100 * values['routing'][0]:.1f} / {100 * values['tag'][0]:.1f}"
                             f" ± {100 * values['tag'][1]:.1f}")
            else:
                cells.append("–")
        lines.append(f"| {e['method']} | " + " | ".join(cells) + " |")
    return lines + [""]
