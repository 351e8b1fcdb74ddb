"""Run the study's grid for one data set and write REPORT.md from every results.json found.

    python scripts/reproduce_paper.py --dataset=mnist --arch=fcn2 --epochs=10 --data_dir=../shared/data
    python scripts/reproduce_paper.py --report_only        # rebuild REPORT.md from runs/paper
    python scripts/reproduce_paper.py --queue=scripts/study_queue.txt --data_dir=../shared/data   # the study queue

Grid: input bits {2, 3, 4, 8} (Table 1 has 3) × precision {full, bnn} × adversarial training {off, on} (and xnor via
--precisions). Each run is `experiments/<dataset>.py` in its own process; finished runs are skipped and
interrupted ones resumed, so the whole grid can be stopped and restarted at will.
"""

import collections
import itertools
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them

from absl import app, flags, logging  # noqa: E402

from tfdisc import analysis, datasets, files, models, plotting, presets  # noqa: E402
import claims  # noqa: E402  (scripts/claims.py)

ROOT = Path(__file__).resolve().parents[1]

flags.DEFINE_enum("dataset", "mnist", list(presets.DATASETS), "Data set of the grid (experiments/<dataset>.py).")
flags.DEFINE_string("arch", None, "Architecture (default: the script's).")
flags.DEFINE_list("bits", ["2", "3", "4", "8"], "Input bits of the grid.")
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
flags.DEFINE_string("readme", None, "README whose results at a glance (between its results markers) are written "
                    "from the same runs as the report (default: README.md beside --report, as figures go to its docs/).")
flags.DEFINE_string("study", "docs/study_tables.csv", "The study's cells, transcribed (table, model, column, accuracy).")
flags.DEFINE_string("notes", "docs/report_notes.md", "Hand-written analysis appended to the report, if the file exists.")
flags.DEFINE_bool("report_only", False, "Only rebuild the report from existing results.")
flags.DEFINE_string("queue", None, "A queue file: one reproduce_paper.py invocation (its flags) per line, run in order; "
                    "finished runs are skipped and interrupted ones resumed. scripts/study_queue.sh starts it in the "
                    "background.")
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
        if FLAGS.reevaluate and not resume and (run_dir / "results.json").exists():
            sys.exit(f"error: --reevaluate: {run_dir} holds the run's records but not its checkpoints (only records "
                     "are committed). Train it here first: move its results.json away and run the grid without "
                     "--reevaluate.")
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
        config = path.parent / "config.json"
        if "train_examples" not in result:  # runs before results.json recorded it
            result["train_examples"] = json.loads(config.read_text())["flags"].get("train_examples") \
                if config.exists() else None
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
    header = ["model", "input", "clean"] + [f"{attack} ε={claims.eps_label(e, dataset)}" for attack in ["FGSM"] + [
        titles[n] for n in extra] for e in eps_list]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = sorted(results, key=lambda r: (r["precision"] != "full", r["precision"], r["adv_train"], -r["input_bits"]))
    for r in rows:
        values = [r["clean_accuracy"]] + [_at(r, e) for e in eps_list] + [
            _attack_at(r, name, e) for name in extra for e in eps_list]
        cells = [_label(r), f"{r['input_bits']}-bit"] + ["–" if v is None else f"{100 * v:.1f}" for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    rows_by_note = {}  # how the report beyond FGSM ran -> the rows it ran on
    for r in rows:
        if "robustness" in r and set(r.get("attacks", {})) - {"fgsm"}:
            note = f"{r['robustness']['examples']} test examples" + "".join(
                f", {_setting(r['robustness'], name)}" for name in ("pgd", "autoattack") if name in r.get("attacks", {}))
            rows_by_note.setdefault(note, []).append(claims.model_label(r["precision"], r["input_bits"], r["adv_train"]))
    notes = sorted(note + (f" ({', '.join(labels)})" if len(rows_by_note) > 1 else "")
                   for note, labels in rows_by_note.items())
    if notes and extra:
        columns = [titles[n] for n in extra]
        named = f"{', '.join(columns[:-1])} and {columns[-1]}" if len(columns) > 1 else columns[0]
        lines += ["", named[0].upper() + named[1:] + " (over every attack run: " + ", ".join(sorted({
            n for r in results for n in r.get("attacks", {})})) + ") on " + "; ".join(notes) + "."]
    return "\n".join(lines)


def _setting(settings, attack):
    """How `attack` was run, from a report's settings."""
    if attack == "pgd":
        return f"PGD {settings['pgd_steps']} steps × {settings['pgd_restarts']} restart(s)"
    cascade = settings["autoattack"]
    return (f"AutoAttack {cascade['version']} ({' → '.join(cascade['stages'])}, APGD {cascade['apgd_iterations']} "
            f"iterations, Square {cascade['square_queries']} queries, each on the survivors)")


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
            parts.append(f"| {claims.eps_label(e, ev['dataset'])} | " + " | ".join(
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

    A report gathers runs made on several machines: sections whose runs are not here are kept (see `_superseded`).
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
    """An earlier generation's section, marked as such, without verdict rows: claims are judged in the ledger only."""
    heading, _, body = section.rstrip().partition("\n")
    body = re.sub(r"\n{3,}", "\n\n", re.sub(r"(?m)^\| the study's claim \|.*\n(^\|.*\n?)*", "", body + "\n")).rstrip()
    return f"{heading}\n{body}\n" if KEPT_NOTE in body else f"{heading}\n\n{KEPT_NOTE}\n{body}\n"


def _superseded(key, section, groups):
    """Whether a kept reduced-budget section's every model has a full-budget run of the same setup here."""
    dataset, arch, budget = key
    if not budget.startswith("reduced"):
        return False
    full = {(_label(r), f"{r['input_bits']}-bit") for setup, group in groups.items() if setup[:2] == (dataset, arch)
            for r in group if not claims.reduced_budget(r)}
    kept = {tuple(row.split(" | ")[:2]) for row in re.findall(r"(?m)^\| (\S[^|]*? \| \d+-bit) \|", section)}
    return bool(kept) and kept <= full


def _group_section(dataset, arch, budget, group, figures, root):
    r0 = group[0]
    shortest, longest = (f"{f(r['train_seconds'] for r in group):.0f}" for f in (min, max))
    parts = [f"## {dataset} · {arch} · budget: {budget}", "",
             f"{r0['epochs']} epochs on {r0['train_examples'] or 'all'} training images, {r0['test_examples']} test "
             "examples, training time per run "
             f"{shortest if shortest == longest else f'{shortest}–{longest}'} s on this machine (2 CPU cores; "
             "wall clock, so time a run shared the CPU or lay paused counts too).", ""]
    commands = sorted({_portable(r["command"]) for r in group})
    parts += [f"Command: `{commands[0]}`", ""] if len(commands) == 1 else [
        "Commands (each trained some of the runs below):", "", *(f"- `{c}`" for c in commands), ""]
    evaluation_commands = sorted({r["evaluation_command"] for r in group if r["evaluation_command"]})
    if evaluation_commands:
        parts += ["Attacks beyond FGSM added afterwards, without retraining:", ""]
        parts += [f"- `{_portable(command)}`" for command in evaluation_commands] + [""]
    parts += [_table(group, dataset), ""]
    figure = figures / f"{dataset}_{arch}_{budget.split(':')[0].strip().replace(' ', '_')}.png"
    curves = {f"{_label(r)}, {r['input_bits']}-bit": (r["sweep"]["eps"], r["sweep"]["accuracy"])
              for r in sorted(group, key=lambda r: (_label(r), -r["input_bits"]))}
    plotting.plot_accuracy_vs_eps(curves, str(figure), f"{dataset} {arch}: FGSM (BPDA) accuracy vs ε")
    return "\n".join(parts + [f"![{dataset} {arch}]({figure.relative_to(root)})", ""])


def _crossing(eps, accuracy, target):
    """The ε where a falling accuracy curve meets `target`, interpolated linearly; None if it never does."""
    for (e0, a0), (e1, a1) in zip(zip(eps, accuracy), zip(eps[1:], accuracy[1:])):
        if a0 >= target >= a1 and a0 > a1:
            return e0 + (e1 - e0) * (a0 - target) / (a0 - a1)
    return None


def _study_run(results, cell):
    """Our run of a study cell's model, a full budget preferred; None if there is none."""
    runs = [r for r in results if all(r[k] == cell[k] for k in ("dataset", "arch", "precision", "input_bits",
                                                                  "adv_train"))]
    return claims.preferred(runs)


def _column_eps(results, study):
    """{(dataset, column): (ε, reasoning)}: each adversarial column's ε, where our full-precision 8-bit curves meet
    the study's numbers (the model least sensitive to our design choices), median over its cells, on our grid."""
    found = collections.defaultdict(list)
    for cell in study:
        run = _study_run(results, cell)
        if cell["column"] == "clean" or run is None or (cell["precision"], cell["input_bits"], cell["adv_train"]) != (
                "full", 8, False) or claims.reduced_budget(run):
            continue
        crossing = _crossing(run["sweep"]["eps"], run["sweep"]["accuracy"], cell["accuracy"])
        if crossing is not None:
            found[(cell["dataset"], cell["column"])].append((crossing, cell))
    inferred = {}
    for (dataset, column), crossings in found.items():
        middle = statistics.median(c for c, _ in crossings)
        grid = presets.get(dataset).sweep_eps
        nearest = min(grid, key=lambda e: abs(e - middle))
        reasoning = "; ".join(f"{c['arch']} full 8-bit meets the study's {claims.pct(c['accuracy'])} at ε≈{e:.3f}"
                              for e, c in crossings)
        inferred[(dataset, column)] = (nearest, f"{reasoning} → ε={claims.eps_label(nearest, dataset)} (nearest on "
                                                f"our grid)")
    return inferred


def _study_section(results, study):
    """The study's transcribed cells beside ours, with the ε inferred for each adversarial column."""
    inferred = _column_eps(results, study)
    parts = ["## The study beside us", "",
             f"The study's cells transcribed so far (`{FLAGS.study}`; its source column says where each number comes "
             "from), next to our run of the same model (full budget where we have one). The study's ε column headers "
             "are lost in the text we have; each adversarial column's ε is inferred from our full-precision 8-bit "
             "FGSM curve, the model least sensitive to our design choices: the ε where that curve meets the study's "
             "number.", ""]
    columns = sorted({(c["dataset"], c["column"]) for c in study if c["column"] != "clean"})
    parts += [f"- {dataset} `{column}`: " + (inferred[(dataset, column)][1] if (dataset, column) in inferred else
                                             "not inferred yet (no full-budget full-precision 8-bit run meets it)")
              for dataset, column in columns]
    parts += [f"- {dataset}: none of the study's adversarial cells is transcribed yet, so its ε columns cannot be "
              f"inferred; add them to `{FLAGS.study}` and rerun with `--report_only`"
              for dataset in sorted({c["dataset"] for c in study} - {d for d, _ in columns})] + [""]
    parts += ["| table | data set | model | column | ε | the study | ours | our run's budget |",
              "|---|---|---|---|---|---|---|---|"]
    for cell in study:
        run, model = _study_run(results, cell), claims.model_label(cell["precision"], cell["input_bits"],
                                                                   cell["adv_train"])
        eps = None if cell["column"] == "clean" else inferred.get((cell["dataset"], cell["column"]), (None,))[0]
        ours = None
        if run is not None and cell["column"] == "clean":
            ours = run["clean_accuracy"]
        elif run is not None and eps is not None:
            ours = _at(run, eps)
        eps_text = "–" if cell["column"] == "clean" else ("?" if eps is None else claims.eps_label(eps, cell["dataset"]))
        budget = "not run" if run is None else (claims.reduced_budget(run) or f"full ({run['epochs']} epochs)")
        parts.append(f"| {cell['table']} | {cell['dataset']} | {cell['arch']} {model} | {cell['column']} | {eps_text} | "
                     f"{claims.pct(cell['accuracy'])} | {'–' if ours is None else claims.pct(ours)} | {budget} |")
    return "\n".join(parts + [""])


ACTIVATION_EXAMPLES = 1000


def _activation_l1(result):
    """Fig. 6's analysis of one run on the first 1000 test images, cached in <run>/activation_l1.json; None when its
    SavedModel or data is not here."""
    cache = Path(result["run_dir"]) / "activation_l1.json"
    if cache.exists():
        return json.loads(cache.read_text())
    try:
        model = models.load(result["run_dir"])
        data = datasets.load_arrays(result["dataset"], "test", data_dir=FLAGS.data_dir, examples=ACTIVATION_EXAMPLES,
                                    subset_order="first", download=False)
    except (ValueError, FileNotFoundError) as error:
        logging.warning("no activation analysis of %s: %s", result["run_dir"], error)
        return None
    found = analysis.activation_l1(model, data, presets.get(result["dataset"]).sweep_eps)
    files.write_json_atomic(cache, found)
    return found


def _fig6_runs(results):
    return [r for r in results if r["dataset"] == "mnist" and r["arch"] in ("fcn1", "fcn2") and r["input_bits"] == 8
            and not r["adv_train"] and r["precision"] in ("full", "bnn")]


def _fig6_section(analyses, results, root):
    """Fig. 6: the first hidden layer's activations on clean and FGSM inputs, MNIST FCNs, full vs BNN, 8-bit."""
    runs = [r for r in _fig6_runs(results) if r["run_dir"] in analyses]
    if not runs:
        return None
    label = lambda r: f"{r['arch']} {r['precision']} ({claims.reduced_budget(r) or 'full budget'})"  # noqa: E731
    figure = root / "docs" / "mnist_activation_l1.png"
    plotting.plot_activation_l1({label(r): analyses[r["run_dir"]] for r in runs}, str(figure),
                                "MNIST, first hidden layer under FGSM (BPDA), 8-bit input")
    eps = list(presets.get("mnist").report_eps)
    parts = ["## Fig. 6: first-layer activations under attack", "",
             f"`tfdisc.analysis.activation_l1` on the first {ACTIVATION_EXAMPLES} test images: a(x) is the first hidden "
             "layer's output as the second layer sees it (ReLU output in full precision, ±1 signs in a BNN), x_adv is "
             "FGSM (BPDA) at ε.", "",
             "| model | units | mean activation magnitude per unit | " + " | ".join(
                 f"‖Δa‖₁ / ‖a(x)‖₁ at ε={e:g}" for e in eps) + " |", "|---|---|---|" + "---|" * len(eps)]
    for r in runs:
        found = analyses[r["run_dir"]]
        share = {round(e, 6): c / a for e, c, a in zip(found["eps"], found["change_l1"], found["clean_l1"])}
        parts.append(f"| {label(r)} | {found['units']} | {found['clean_l1'][0] / found['units']:.3f} | " + " | ".join(
            f"{share[round(e, 6)]:.3f}" if round(e, 6) in share else "–" for e in eps) + " |")
    return "\n".join(parts + ["", f"![activations]({figure.relative_to(root)})", ""])


def _ledger_section(results, study, analyses):
    rows = claims.ledger(results, study, analyses)
    parts = ["## The study's claims, judged", "",
             "Each claim, then the rule that judges it, computed by `scripts/claims.py` from the results above; one "
             "verdict under FGSM (the study's attack) and one under the AutoAttack worst case. Source \"abstract\" "
             "marks claims the study's abstract makes (arXiv:1902.03151); \"IEEE Access abstract\" marks the two that "
             "the abstract of its published version (IEEE Access 7, 2019, doi:10.1109/ACCESS.2019.2919463) adds; the "
             "others follow issue 12's list, in our words, until the study's text is transcribed. A gate checks "
             "the runs first: a claim is *not run* on a setup when a run or attack it needs is missing; otherwise it "
             f"is *inconclusive* when a run it needs had a reduced budget or sits more than "
             f"{100 * claims.CLEAN_GAP:.0f} points of clean accuracy below the study's (where the study's clean "
             "accuracy is transcribed), and its numbers follow \"not judged\". "
             f"\"Beats\" means by more than {100 * claims.MARGIN:.0f} points.", "",
             "| # | the study's claim | source | rule | verdict under FGSM | verdict under AutoAttack (worst case) | "
             "evidence |", "|---|---|---|---|---|---|---|"]
    for number, (claim, judged) in enumerate(rows, 1):
        verdicts = [judged.get(name, judged.get("clean", ("–", "")))[0] for name in claims.ATTACKS.values()]
        if "clean" in judged or "AutoAttack" not in judged:
            verdicts[1] = "– (clean accuracy)" if "clean" in judged else "– (an FGSM analysis)"
        elif "FGSM" not in judged:
            verdicts[0] = "– (AutoAttack against FGSM)"
        evidence = " ".join(f"*{name}:* {detail}" for name, (_, detail) in judged.items())
        parts.append(f"| {number} | {claim.words} | {claim.source} | {claim.rule} | {' | '.join(verdicts)} | {evidence} |")
    return "\n".join(parts + [""])


README_BEGIN = "<!-- results at a glance: written by scripts/reproduce_paper.py from the runs behind REPORT.md -->"
README_END = "<!-- end of results at a glance -->"
GLANCE_MODELS = (("full", 8, False, "full precision, 8-bit input"), ("full", 2, False, "full precision, 2-bit input"),
                 ("bnn", 8, False, "BNN, 8-bit input"), ("bnn", 2, False, "BNN, 2-bit input"),
                 ("full", 8, True, "full precision + R-FGSM training, 8-bit"))
GLANCE_SETUPS = (("mnist", "fcn2", "MNIST, FCN2 (784-600×4-10)", "FCN2"),  # dataset, arch, caption, column name
                 ("cifar10", "alexnet", "CIFAR-10, AlexNet", "AlexNet"))


def _glance_table(results, dataset, arch, caption, column):
    """The setup's full-budget GLANCE_MODELS under FGSM and AutoAttack at the report ε; [] without such runs."""
    runs = [r for r in results if (r["dataset"], r["arch"]) == (dataset, arch) and not claims.reduced_budget(r)]
    by_model = {(r["precision"], r["input_bits"], r["adv_train"]): r for r in reversed(runs)}  # first of duplicates
    rows = [(name, by_model[(precision, bits, adv)]) for precision, bits, adv, name in GLANCE_MODELS
            if (precision, bits, adv) in by_model]
    if not rows:
        return []
    eps = list(presets.get(dataset).report_eps)
    recipes = sorted({r.get("recipe") or "constant" for _, r in rows} - {"constant"})
    recipe = f" (`--recipe={', '.join(recipes)}`)" if recipes else ""
    lines = [f"{caption} trained for {rows[0][1]['epochs']} epochs on all training images{recipe}; "
             "FGSM with straight-through (BPDA) gradients on the whole test set, AutoAttack (standard cascade) on the "
             "subset REPORT.md states.", "",
             f"| {column}, accuracy % | clean | " + " | ".join(
                 f"{a} ε={claims.eps_label(e, dataset)}" for e in eps for a in ("FGSM", "AutoAttack")) + " |",
             "|---|---|" + "---|" * 2 * len(eps)]
    for name, run in rows:
        cells = [run["clean_accuracy"]] + [v for e in eps for v in (_at(run, e), _attack_at(run, "autoattack", e))]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{100 * v:.1f}" for v in cells) + " |")
    return lines + [""]


def _glance(results):
    """README's results at a glance: a table per GLANCE_SETUPS setup with full-budget runs, then how much of each
    of the study's setups this machine's runs cover."""
    lines = [line for setup in GLANCE_SETUPS for line in _glance_table(results, *setup)]
    lines += ["How much of the study these runs cover (input bits × precision × adversarial training):", ""]
    for arch, spec in models.ARCHITECTURES.items():
        runs = [r for r in results if r["arch"] == arch]
        full = sorted({claims.model_label(r["precision"], r["input_bits"], r["adv_train"]) for r in runs
                       if not claims.reduced_budget(r)})
        reduced = sorted({claims.model_label(r["precision"], r["input_bits"], r["adv_train"]) for r in runs
                          if claims.reduced_budget(r)})
        parts = ([f"{len(full)} model(s) at the study's budget ({spec.epochs} epochs): {', '.join(full)}"] if full else []
                 ) + ([f"{len(reduced)} at a reduced budget: {', '.join(reduced)}"] if reduced else [])
        lines.append(f"- {spec.dataset} {arch}: " + ("; ".join(parts) if parts else "not run on this machine") + ".")
    return "\n".join(lines)


def write_readme(results, path):
    """Replace README's text between its results markers with `_glance`; a README without them is left alone."""
    text = Path(path).read_text() if Path(path).is_file() else ""
    if README_BEGIN not in text or README_END not in text:
        logging.info("%s has no results markers; left as it is.", path)
        return
    head, rest = text.split(README_BEGIN, 1)
    files.write_text_atomic(path, f"{head}{README_BEGIN}\n{_glance(results)}\n{README_END}{rest.split(README_END, 1)[1]}")


def write_report(results, path, evaluations=()):
    groups = collections.defaultdict(list)
    for r in results:
        groups[(r["dataset"], r["arch"], r["budget"])].append(r)
    earlier_groups, earlier_evaluations = _earlier_sections(path)
    root = Path(path).parent
    sections = {key: _kept(text) for key, text in earlier_groups.items() if not _superseded(key, text, groups)}
    sections.update({key: _group_section(*key, group, root / "docs", root) for key, group in groups.items()})
    parts = ["# Reproduction report", "",
             "Accuracies (%) on real test data. FGSM columns: white-box FGSM, x_adv = clip(x + ε·sign(∇x L), 0, 1), "
             "over the test examples stated for each table. Gradients pass straight through the input "
             "discretization (BPDA, `gradient=identity`). FGSM is a single-step attack, so its numbers are upper "
             "bounds on robustness. PGD, AutoAttack and worst-case columns, where present, come from the robustness "
             "report on the subset stated below the table; each claim is judged under FGSM and, where every model "
             "it involves was attacked, under AutoAttack. \"+ adv\" is R-FGSM adversarial training (Tramèr et al. "
             "2018) at the script's default ε (MNIST: ε=0.3, α=0.15). Generated by `scripts/reproduce_paper.py` from "
             "the runs' records (`results.json`, `config.json`, `history.csv`, committed under `runs/paper/`); their models "
             "and checkpoints are not committed.", ""]
    order = lambda key: (list(presets.DATASETS).index(key[0]), key[2].startswith("reduced"), key[1])  # noqa: E731
    parts += [sections[key] for key in sorted(sections, key=order)]
    study = claims.load_study(FLAGS.study)
    analyses = {r["run_dir"]: found for r in _fig6_runs(results) if (found := _activation_l1(r)) is not None}
    parts += [_study_section(results, study), _ledger_section(results, study, analyses)]
    fig6 = _fig6_section(analyses, results, root)
    parts += [fig6] if fig6 else []
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


def _queue_entries(path):
    """The queue file's entries, in order: each line's flags (blank lines and # comments skipped)."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                entries.append(shlex.split(line))
            except ValueError as error:
                sys.exit(f"error: {path}, line {number}: {error}; fix the line's quoting.")
    return entries


def run_queue(path):
    """Run every entry of the queue file at `path`, one process each, re-reading the file after each one (so
    entries added meanwhile run too). A failed entry is logged and the next one runs; exit status 1 if any failed."""
    passed = [f"--{name}={FLAGS[name].value}" for name in ("data_dir", "output_dir", "report", "readme", "study",
                                                            "notes") if FLAGS[name].present]
    lock_path = Path(FLAGS.output_dir) / ".queue.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    done, failed = [], []
    try:
        with files.exclusive_lock(str(lock_path), f"The queue of {FLAGS.output_dir}"):
            while pending := [e for e in _queue_entries(path) if e not in done]:
                entry = pending[0]
                logging.info("queue: entry %d of %d: %s", len(done) + 1, len(done) + len(pending), shlex.join(entry))
                process = subprocess.run([sys.executable, __file__, *entry, *passed], check=False)
                if process.returncode in (-2, 130):  # Ctrl-C / SIGINT: stop the queue; the next start resumes
                    sys.exit("queue stopped; start it again to resume.")
                if process.returncode:
                    failed.append(shlex.join(entry))
                    logging.error("queue: entry failed (exit status %d): %s", process.returncode, shlex.join(entry))
                done.append(entry)
    except files.LockedError as error:
        sys.exit(f"error: {error}")
    logging.info("queue: %d entries run, %d failed", len(done), len(failed))
    if failed:
        sys.exit("error: failed queue entries (their logs are above):\n" + "\n".join(failed))


def main(argv):
    del argv
    if FLAGS.queue:
        run_queue(FLAGS.queue)
        return
    if not FLAGS.report_only:
        run_grid()
    results = _load_results(FLAGS.output_dir)
    if not results:
        sys.exit(f"error: no results.json under {FLAGS.output_dir}; run the grid first.")
    evaluations = [json.loads(p.read_text()) for p in sorted(Path(FLAGS.output_dir).glob("evaluations/*.json"))]
    write_report(results, FLAGS.report, evaluations)
    write_readme(results, FLAGS.readme or Path(FLAGS.report).parent / "README.md")
    logging.info("wrote %s from %d runs", FLAGS.report, len(results))


if __name__ == "__main__":
    app.run(main)
