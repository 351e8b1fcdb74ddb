"""Run the study's grid for one data set and write REPORT.md from every results.json found.

    python scripts/reproduce_paper.py --dataset=mnist --arch=fcn2 --epochs=10 --data_dir=../shared/data
    python scripts/reproduce_paper.py --report_only        # rebuild REPORT.md from runs/paper

Grid: input bits {2, 4, 8} × precision {full, bnn} × adversarial training {off, on} (and xnor via
--precisions). Each run is `experiments/<dataset>.py` in its own process; finished runs are skipped and
interrupted ones resumed, so the whole grid can be stopped and restarted at will.
"""

import collections
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them

from absl import app, flags, logging  # noqa: E402

from tfdisc import files, plotting, presets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

flags.DEFINE_enum("dataset", "mnist", list(presets.DATASETS), "Data set of the grid (experiments/<dataset>.py).")
flags.DEFINE_string("arch", None, "Architecture (default: the script's).")
flags.DEFINE_list("bits", ["2", "4", "8"], "Input bits of the grid.")
flags.DEFINE_list("precisions", ["full", "bnn"], "Precisions of the grid.")
flags.DEFINE_list("adv", ["off", "on"], "Adversarial training settings of the grid.")
flags.DEFINE_integer("epochs", None, "Epochs per run (default: the study's for the arch).")
flags.DEFINE_integer("train_examples", None, "Reduced budget: training examples per run.")
flags.DEFINE_integer("test_examples", None, "Reduced budget: test examples per run.")
flags.DEFINE_string("budget", "full", "Label for this budget in the report (e.g. 'reduced: 2 epochs, 10k examples').")
flags.DEFINE_string("data_dir", None, "Passed to the experiment scripts.")
flags.DEFINE_string("output_dir", "runs/paper", "Where the runs go (one folder per budget label).")
flags.DEFINE_string("report", "REPORT.md", "Report to write.")
flags.DEFINE_multi_string("extra", [], "Extra flag for every run, e.g. --extra=--sweep_every=0.")
flags.DEFINE_string("notes", "docs/report_notes.md", "Hand-written analysis appended to the report, if the file exists.")
flags.DEFINE_bool("report_only", False, "Only rebuild the report from existing results.")
flags.DEFINE_bool("reevaluate", False, "Evaluate finished runs again (e.g. with --extra=--attacks=...), no training.")
FLAGS = flags.FLAGS


def _budget_dir():
    return Path(FLAGS.output_dir) / FLAGS.budget.split(":")[0].strip().replace(" ", "_")


def run_grid():
    out = _budget_dir()
    arch = FLAGS.arch or presets.get(FLAGS.dataset).arch
    for bits, precision, adv in itertools.product(FLAGS.bits, FLAGS.precisions, FLAGS.adv):
        args = [sys.executable, str(ROOT / "experiments" / f"{FLAGS.dataset}.py"), f"--output_dir={out}",
                f"--arch={arch}", f"--input_bits={bits}", f"--precision={precision}", f"--adv_train={adv == 'on'}",
                *FLAGS.extra]
        for name in ("epochs", "train_examples", "test_examples", "data_dir"):
            if FLAGS[name].value is not None:
                args.append(f"--{name}={FLAGS[name].value}")
        name = f"{FLAGS.dataset}_{arch}_{precision}_{bits}b{'_adv' if adv == 'on' else ''}"
        run_dir = out / name
        if (run_dir / "results.json").exists() and not FLAGS.reevaluate:
            logging.info("done already: %s", run_dir)
            continue
        resume = (run_dir / "checkpoints").is_dir()
        logging.info("%s %s", "resuming" if resume else "running", run_dir)
        subprocess.run(args + [f"--run_name={name}", f"--resume={resume}"], check=True)
        command = shlex.join(["python", *sys.argv])
        label = {"budget": FLAGS.budget, "command": command}
        if FLAGS.reevaluate and (run_dir / "budget.json").exists():
            label = {**json.loads((run_dir / "budget.json").read_text()), "evaluation_command": command}
        files.write_json_atomic(run_dir / "budget.json", label)


def _load_results(root):
    results = []
    for path in sorted(Path(root).glob("**/results.json")):
        result = json.loads(path.read_text())
        budget = path.parent / "budget.json"
        label = json.loads(budget.read_text()) if budget.exists() else {}
        result["budget"] = label.get("budget", "unlabelled")
        result["command"] = label.get("command", "")
        result["evaluation_command"] = label.get("evaluation_command", "")
        result["run_dir"] = str(path.parent)
        results.append(result)
    return results


def _at(result, eps):
    sweep = result["sweep"]
    for e, accuracy in zip(sweep["eps"], sweep["accuracy"]):
        if abs(e - eps) < 1e-6:
            return accuracy
    return None


def _portable(command):
    """A recorded command as run from the repository root: relative paths, no --report, flag values quoted."""
    args = shlex.split(command)
    if args and args[0] != "python":
        args.insert(0, "python")
    words = []
    for arg in args:
        if arg.startswith("--report="):
            continue
        arg = arg.replace(str(ROOT.parent / "shared"), "../shared").replace(str(ROOT) + "/", "")
        name, equals, value = arg.partition("=")
        words.append(f"{name}={shlex.quote(value)}" if arg.startswith("--") and equals else shlex.quote(arg))
    return " ".join(words)


def _eps_label(eps, dataset):
    return f"{eps * 255:.0f}/255" if dataset.startswith(("cifar", "imagenet")) else f"{eps:g}"


def _label(result):
    return f"{result['precision']}{' + adv' if result['adv_train'] else ''}"


def _attack_at(result, name, eps):
    """A report's accuracy under attack `name` at `eps`; "worst" only where more than one attack ran."""
    several = len(result.get("attacks", {})) > 1
    curve = (result.get("worst_case") if several else None) if name == "worst" else result.get("attacks", {}).get(name)
    if not curve:
        return None
    return next((a for e, a in zip(curve["eps"], curve["accuracy"]) if abs(e - eps) < 1e-6), None)


def _table(results, dataset):
    """Rows: model × input bits; columns: clean, FGSM at each report ε, then PGD and worst case where run."""
    eps_list = list(presets.get(dataset).report_eps)
    several = any(len(r.get("attacks", {})) > 1 for r in results)  # a worst case over FGSM alone says nothing new
    extra = [name for name in ("pgd", "autoattack", "worst") if (name != "worst" or several)
             and any(_attack_at(r, name, e) is not None for r in results for e in eps_list)]
    titles = {"pgd": "PGD", "autoattack": "AutoAttack", "worst": "worst case"}
    header = ["model", "input", "clean"] + [f"{attack} ε={_eps_label(e, dataset)}" for attack in ["FGSM"] + [
        titles[n] for n in extra] for e in eps_list]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(results, key=lambda r: (r["precision"] != "full", r["precision"], r["adv_train"], -r["input_bits"])):
        values = [r["clean_accuracy"]] + [_at(r, e) for e in eps_list] + [
            _attack_at(r, name, e) for name in extra for e in eps_list]
        cells = [_label(r), f"{r['input_bits']}-bit"] + ["–" if v is None else f"{100 * v:.1f}" for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({f"{r['robustness']['examples']} test examples" + "".join(
        f", {_setting(r['robustness'], name)}" for name in ("pgd", "autoattack") if name in r.get("attacks", {}))
        for r in results if "robustness" in r and set(r.get("attacks", {})) - {"fgsm"}})
    if notes:
        lines += ["", "PGD, AutoAttack and worst case (over every attack run: " + ", ".join(sorted({
            n for r in results for n in r.get("attacks", {})})) + ") on " + "; ".join(notes) + "."]
    return "\n".join(lines)


def _setting(settings, attack):
    """How `attack` was run, from a report's settings."""
    if attack == "pgd":
        return f"PGD {settings['pgd_steps']} steps × {settings['pgd_restarts']} restart(s)"
    cascade = settings["autoattack"]
    return (f"AutoAttack {cascade['version']} ({' → '.join(cascade['stages'])}, APGD {cascade['apgd_iterations']} "
            f"iterations, Square {cascade['square_queries']} queries, each on the survivors)")


def _find(results, precision, bits, adv):
    return next((r for r in results if r["precision"] == precision and r["input_bits"] == bits
                 and r["adv_train"] == adv), None)


def _verdict(holds):
    return "holds" if holds else "does not hold"


def _accuracy(result, attack, eps):
    """Accuracy of `result` at `eps` under "fgsm" (the full test set's sweep) or a report's attack; None if not run."""
    return _at(result, eps) if attack == "fgsm" else _attack_at(result, attack, eps)


ATTACK_NAMES = {"fgsm": "FGSM", "autoattack": "AutoAttack"}


def _claims(results, dataset, arch):
    """(claim, attack, verdict, evidence) for the study's claims this group can check, under FGSM and AutoAttack."""
    return [claim for attack in ATTACK_NAMES for claim in _claims_under(results, dataset, arch, attack)]


def _claims_under(results, dataset, arch, attack):
    """The claims judged on `attack`'s accuracies, at the ε where every model involved was attacked."""
    report_eps = list(presets.get(dataset).report_eps)
    fmt = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    name = ATTACK_NAMES[attack]

    def common_eps(*runs):
        grid = runs[0]["sweep"]["eps"] if attack == "fgsm" else report_eps
        return [e for e in grid if all(_accuracy(r, attack, e) is not None for r in runs)]

    claims = []
    two, eight = _find(results, "full", 2, False), _find(results, "full", 8, False)
    if two and eight and common_eps(two, eight):
        drop = lambda r, e: r["clean_accuracy"] - _accuracy(r, attack, e)  # noqa: E731
        grid = common_eps(two, eight)
        where = [e for e in grid if drop(two, e) <= 0.10 <= 0.30 <= drop(eight, e)]
        evidence = (f"full precision: at ε={', '.join(_eps_label(e, dataset) for e in where)} the 2-bit model stays "
                    "within 10 points of clean while the 8-bit one loses ≥ 30 points" if where else
                    f"no ε of {', '.join(_eps_label(e, dataset) for e in grid)} where 2-bit stays within 10 points of "
                    "clean while 8-bit loses ≥ 30")
        beyond = [e for e in grid if drop(two, e) > 0.5]
        if beyond:
            evidence += f"; from ε={_eps_label(beyond[0], dataset)} the 2-bit model loses more than 50 points too"
        claims.append(("2-bit inputs keep accuracy close to clean accuracy over a range of ε where 8-bit inputs "
                       "collapse", name, _verdict(bool(where)), evidence))
    bnn, full = _find(results, "bnn", 8, False), _find(results, "full", 8, False)
    small = report_eps[0]
    if bnn and full and arch in ("fcn1", "fcn2") and small in common_eps(bnn, full):
        better = _accuracy(bnn, attack, small) > _accuracy(full, attack, small) + 0.02  # "beats": by > 2 points
        expected = arch == "fcn1"
        claim = ("BNN beats full precision (by > 2 points) at small ε when capacity is large" if expected else
                 "BNN does not beat full precision (by > 2 points) at small ε when capacity is small")
        claims.append((f"{arch}: {claim}", name, _verdict(better == expected),
                       f"8-bit inputs, ε={_eps_label(small, dataset)}: BNN {fmt(_accuracy(bnn, attack, small))} vs "
                       f"full {fmt(_accuracy(full, attack, small))}"))
    bnn2, adv8 = _find(results, "bnn", 2, False), _find(results, "full", 8, True)
    if bnn2 and adv8 and all(e in common_eps(bnn2, adv8) for e in report_eps):
        matches = [_accuracy(bnn2, attack, e) - _accuracy(adv8, attack, e) >= -0.05 for e in report_eps]
        verdict = _verdict(all(matches))
        if matches[0] and not all(matches):
            verdict = f"holds only for ε ≤ {_eps_label(report_eps[matches.index(False) - 1], dataset)}"
        claims.append(("BNN + 2-bit input matches (within 5 points) an adversarially trained full-precision 8-bit model",
                       name, verdict, "BNN 2-bit vs adv-trained full 8-bit: " + ", ".join(
                           f"ε={_eps_label(e, dataset)}: {fmt(_accuracy(bnn2, attack, e))} vs "
                           f"{fmt(_accuracy(adv8, attack, e))}" for e in report_eps)))
    return claims


def _evaluation_subsections(evaluations):
    """{command: markdown} for scripts/evaluate.py reports: attacks × ε, worst case, checks."""
    subsections = {}
    for ev in evaluations:
        names = list(ev["attacks"])
        settings = ev["settings"]
        command = _portable(ev.get("command", ""))
        parts = [f"### {Path(ev['model']).name} ({ev['name']}), gradient = {ev['gradient']}", "",
                 f"{ev['examples']} {ev['dataset']} test examples; clean accuracy {100 * ev['clean_accuracy']:.1f}%; "
                 f"PGD {settings['pgd_steps']} steps × {settings['pgd_restarts']} restart(s); Square "
                 f"{settings['square_queries']} queries; "
                 + (f"{_setting(settings, 'autoattack')}; " if "autoattack" in ev["attacks"] else "")
                 + f"surrogate `{ev.get('surrogate')}`; {ev['seconds']:.0f} s on this machine (2 CPU cores).", "",
                 f"Command: `{command}`", "",
                 "| ε | " + " | ".join(names) + " | worst case |", "|---|" + "---|" * (len(names) + 1)]
        for i, e in enumerate(ev["eps"]):
            parts.append(f"| {_eps_label(e, ev['dataset'])} | " + " | ".join(
                f"{100 * ev['attacks'][n]['accuracy'][i]:.1f}" for n in names)
                + f" | {100 * ev['worst_case']['accuracy'][i]:.1f} |")
        parts += ["", "| check | result | detail |", "|---|---|---|"]
        parts += [f"| {c['check']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |" for c in ev["checks"]]
        verdict = "possible gradient masking" if ev["masking_suspected"] else "no sign of gradient masking"
        subsections[command] = "\n".join(parts + ["", f"Verdict: {verdict}.", ""])
    return subsections


KEPT_NOTE = "*Kept from an earlier generation of this report: its runs are not on the machine that wrote this one.*"
GROUP_HEADING = re.compile(r"^## (\S+) · (\S+) · budget: (.*)$")
EVALUATIONS_HEADING = "## Robustness reports: is the robustness real?"


def _earlier_sections(path):
    """An existing report's group sections {(dataset, arch, budget): text} and evaluation subsections {command: text}.

    A report gathers runs made on several machines: sections whose runs are not here are kept.
    """
    groups, evaluations = {}, {}
    if not Path(path).exists():
        return groups, evaluations
    for section in re.split(r"(?m)^(?=## )", Path(path).read_text())[1:]:
        heading, _, body = section.partition("\n")
        match = GROUP_HEADING.match(heading)
        if match:
            groups[match.groups()] = section
        elif heading == EVALUATIONS_HEADING:
            evaluations.update({re.search(r"(?m)^Command: `(.*)`$", part).group(1): part
                                for part in re.split(r"(?m)^(?=### )", body)[1:]})
    return groups, evaluations


def _kept(section):
    heading, _, body = section.rstrip().partition("\n")
    return section.rstrip() + "\n" if KEPT_NOTE in body else f"{heading}\n\n{KEPT_NOTE}\n{body}\n"


def _group_section(dataset, arch, budget, group, figures, root):
    r0 = group[0]
    parts = [f"## {dataset} · {arch} · budget: {budget}", "",
             f"{r0['epochs']} epochs, {r0['test_examples']} test examples, "
             f"training time per run {min(r['train_seconds'] for r in group):.0f}–"
             f"{max(r['train_seconds'] for r in group):.0f} s on this machine (2 CPU cores).", "",
             "Command: `" + _portable(r0["command"]) + "`", ""]
    evaluation_commands = sorted({r["evaluation_command"] for r in group if r["evaluation_command"]})
    if evaluation_commands:
        parts += ["Attacks beyond FGSM added afterwards, without retraining:", ""]
        parts += [f"- `{_portable(command)}`" for command in evaluation_commands] + [""]
    parts += [_table(group, dataset), ""]
    claims = _claims(group, dataset, arch)
    if claims:
        parts += ["| the study's claim | attack | by our numbers | evidence |", "|---|---|---|---|"]
        parts += [f"| {c} | {attack} | {verdict} | {e} |" for c, attack, verdict, e in claims]
        parts.append("")
    figure = figures / f"{dataset}_{arch}_{budget.split(':')[0].strip().replace(' ', '_')}.png"
    curves = {f"{_label(r)}, {r['input_bits']}-bit": (r["sweep"]["eps"], r["sweep"]["accuracy"])
              for r in sorted(group, key=lambda r: (_label(r), -r["input_bits"]))}
    plotting.plot_accuracy_vs_eps(curves, str(figure), f"{dataset} {arch}: FGSM (BPDA) accuracy vs ε")
    return "\n".join(parts + [f"![{dataset} {arch}]({figure.relative_to(root)})", ""])


def write_report(results, path, evaluations=()):
    groups = collections.defaultdict(list)
    for r in results:
        groups[(r["dataset"], r["arch"], r["budget"])].append(r)
    earlier_groups, earlier_evaluations = _earlier_sections(path)
    root = Path(path).parent
    sections = {key: _kept(text) for key, text in earlier_groups.items()}
    sections.update({key: _group_section(*key, group, root / "docs", root) for key, group in groups.items()})
    parts = ["# Reproduction report", "",
             "Accuracies (%) on real test data. FGSM columns: white-box FGSM, x_adv = clip(x + ε·sign(∇x L), 0, 1), "
             "over the test examples stated for each table. Gradients pass straight through the input "
             "discretization (BPDA, `gradient=identity`). FGSM is a single-step attack, so its numbers are upper "
             "bounds on robustness. PGD, AutoAttack and worst-case columns, where present, come from the robustness "
             "report on the subset stated below the table; each claim is judged under FGSM and, where every model "
             "it involves was attacked, under AutoAttack. \"+ adv\" is R-FGSM adversarial training (Tramèr et al. "
             "2018) at the script's default ε (MNIST: ε=0.3, α=0.15). Generated by `scripts/reproduce_paper.py` from "
             "the runs' `results.json`; the runs themselves (`runs/`) are not committed.", ""]
    order = lambda key: (list(presets.DATASETS).index(key[0]), key[2].startswith("reduced"), key[1])  # noqa: E731
    parts += [sections[key] for key in sorted(sections, key=order)]
    subsections = {k: _kept(v) for k, v in earlier_evaluations.items()}
    subsections.update(_evaluation_subsections(evaluations))
    if subsections:
        parts += [EVALUATIONS_HEADING, "",
                  "Made by `scripts/evaluate.py` (each with its command). `gradient` is how the input discretization "
                  "passes gradients to the white-box attacks: `identity` is straight-through (BPDA); `zero` is the "
                  "true derivative of the quantizer, which masks gradients. PGD uses a random start and step "
                  "2.5·ε/steps; Square is gradient-free; transfer is FGSM crafted on the surrogate.", ""]
        parts += list(subsections.values())
    if FLAGS.notes and os.path.exists(FLAGS.notes):
        parts += [Path(FLAGS.notes).read_text()]
    files.write_text_atomic(path, "\n".join(parts))


def main(argv):
    del argv
    if not FLAGS.report_only:
        run_grid()
    results = _load_results(FLAGS.output_dir)
    if not results:
        sys.exit(f"error: no results.json under {FLAGS.output_dir}; run the grid first.")
    evaluations = [json.loads(p.read_text()) for p in sorted(Path(FLAGS.output_dir).glob("evaluations/*.json"))]
    write_report(results, FLAGS.report, evaluations)
    logging.info("wrote %s from %d runs", FLAGS.report, len(results))


if __name__ == "__main__":
    app.run(main)
