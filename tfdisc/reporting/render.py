"""REPORT.md and README's results at a glance, rendered from run records by pure functions.

`report(records, study, evaluations, options) -> str` and `glance(records) -> str` only read their
arguments; `figures(records, analyses, options)` draws the PNGs the report links to (their paths are
`figure_path`'s, so the text never depends on whether they were drawn). Nothing here reads a previous
REPORT.md: every section comes from the records.
"""

import collections
import dataclasses
import shlex
import statistics
from pathlib import Path

from tfdisc import eps as eps_lib
from tfdisc import models, plotting, presets
from tfdisc.reporting import ledger as ledger_lib
from tfdisc.reporting import study as study_lib
from tfdisc.reporting.records import RunRecord

pct = ledger_lib.pct
ATTACK_TITLES = {"pgd": "PGD", "autoattack": "AutoAttack", "worst": "worst case"}


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """What the report needs besides the records: where the repository is (commands are shown relative to it),
    where figures go (relative to the report), the study file's name as the text cites it, and the notes."""

    root: Path = Path(".")
    figures_dir: str = "docs"
    study_path: str = "docs/study_tables.csv"
    notes: str = ""


def portable(command: str, root: Path) -> str:
    """A recorded command as run from the repository root: relative paths, no --report, flag values quoted."""
    args = shlex.split(command)
    if args and args[0] != "python":
        args.insert(0, "python")
    words = []
    root = Path(root).resolve()
    for arg in args:
        if arg.startswith("--report="):
            continue
        arg = arg.replace(str(root.parent / "shared"), "../shared").replace(str(root) + "/", "")
        name, equals, value = arg.partition("=")
        words.append(f"{name}={shlex.quote(value)}" if arg.startswith("--") and equals else shlex.quote(arg))
    return " ".join(words)


def _cores(records: list[RunRecord]) -> str:
    """"2 CPU cores" (or each machine's description): where the records' timings were measured."""
    machines = sorted({r.machine for r in records if r.machine})
    return "; ".join(machines) if machines else "machine not recorded"


def _setting(settings: dict, attack: str) -> str:
    """How `attack` was run, from a report's settings."""
    if attack == "pgd":
        return f"PGD {settings['pgd_steps']} steps × {settings['pgd_restarts']} restart(s)"
    cascade = settings["autoattack"]
    return (f"AutoAttack {cascade['version']} ({' → '.join(cascade['stages'])}, APGD {cascade['apgd_iterations']} "
            f"iterations, Square {cascade['square_queries']} queries, each on the survivors)")


def _rows(records):
    return sorted(records, key=lambda r: (r.precision != "full", r.precision, r.adv_train, -r.input_bits))


def results_table(records: list[RunRecord], dataset: str) -> str:
    """Rows: model × input bits; columns: clean, FGSM at each report ε, then PGD, AutoAttack and worst case where
    they ran, with a note naming the examples and settings of the attacks beyond FGSM."""
    eps_list = list(presets.get(dataset).report_eps)
    several = any(len(r.attacks) > 1 for r in records)  # a worst case over FGSM alone says nothing new
    extra = [name for name in ("pgd", "autoattack", "worst") if (name != "worst" or several)
             and any(r.attack_at(name, e) is not None for r in records for e in eps_list)]
    header = ["model", "input", "clean"] + [f"{attack} ε={eps_lib.label(e, dataset)}" for attack in ["FGSM"] + [
        ATTACK_TITLES[n] for n in extra] for e in eps_list]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in _rows(records):
        values = [r.clean_accuracy] + [r.fgsm_at(e) for e in eps_list] + [
            r.attack_at(name, e) for name in extra for e in eps_list]
        cells = [r.label, f"{r.input_bits}-bit"] + ["–" if v is None else f"{100 * v:.1f}" for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    rows_by_note = {}  # how the report beyond FGSM ran -> the rows it ran on
    for r in _rows(records):
        if r.robustness and set(r.attacks) - {"fgsm"}:
            note = f"{r.robustness['examples']} test examples" + "".join(
                f", {_setting(r.robustness, name)}" for name in ("pgd", "autoattack") if name in r.attacks)
            rows_by_note.setdefault(note, []).append(r.model_label)
    notes = sorted(note + (f" ({', '.join(labels)})" if len(rows_by_note) > 1 else "")
                   for note, labels in rows_by_note.items())
    if notes and extra:
        columns = [ATTACK_TITLES[n] for n in extra]
        named = f"{', '.join(columns[:-1])} and {columns[-1]}" if len(columns) > 1 else columns[0]
        lines += ["", named[0].upper() + named[1:] + " (over every attack run: " + ", ".join(sorted({
            n for r in records for n in r.attacks})) + ") on " + "; ".join(notes) + "."]
    return "\n".join(lines)


def _budget_folder(budget: str) -> str:
    return budget.split(":")[0].strip().replace(" ", "_")


def figure_path(dataset: str, arch: str, budget: str, options: ReportOptions) -> str:
    """Where a group's accuracy-vs-ε figure goes, relative to the report."""
    return f"{options.figures_dir}/{dataset}_{arch}_{_budget_folder(budget)}.png"


def _group_curves(group):
    return {f"{r.label}, {r.input_bits}-bit": (r.sweep["eps"], r.sweep["accuracy"])
            for r in sorted(group, key=lambda r: (r.label, -r.input_bits))}


def group_section(dataset: str, arch: str, budget: str, group: list[RunRecord], options: ReportOptions) -> str:
    """One data set, architecture and budget: how the runs were made, their table and their figure."""
    r0 = group[0]
    shortest, longest = (f"{f(r.train_seconds for r in group):.0f}" for f in (min, max))
    parts = [f"## {dataset} · {arch} · budget: {budget}", "",
             f"{r0.epochs} epochs on {r0.train_examples or 'all'} training images, {r0.test_examples} test "
             "examples, training time per run "
             f"{shortest if shortest == longest else f'{shortest}–{longest}'} s ({_cores(group)}; wall clock, so "
             "time a run shared the CPU or lay paused counts too).", ""]
    commands = sorted({portable(r.command, options.root) for r in group})
    parts += [f"Command: `{commands[0]}`", ""] if len(commands) == 1 else [
        "Commands (each trained some of the runs below):", "", *(f"- `{c}`" for c in commands), ""]
    evaluation_commands = sorted({r.evaluation_command for r in group if r.evaluation_command})
    if evaluation_commands:
        parts += ["Attacks beyond FGSM added afterwards, without retraining:", ""]
        parts += [f"- `{portable(command, options.root)}`" for command in evaluation_commands] + [""]
    parts += [results_table(group, dataset), ""]
    return "\n".join(parts + [f"![{dataset} {arch}]({figure_path(dataset, arch, budget, options)})", ""])


def evaluation_section(evaluation: dict, options: ReportOptions) -> str:
    """One `scripts/evaluate.py` report: attacks × ε, the worst case and the checks."""
    names = list(evaluation["attacks"])
    settings = evaluation["settings"]
    command = portable(evaluation.get("command", ""), options.root)
    parts = [f"### {Path(evaluation['model']).name} ({evaluation['name']}), gradient = {evaluation['gradient']}", "",
             f"{evaluation['examples']} {evaluation['dataset']} test examples; clean accuracy "
             f"{100 * evaluation['clean_accuracy']:.1f}%; PGD {settings['pgd_steps']} steps × "
             f"{settings['pgd_restarts']} restart(s); Square {settings['square_queries']} queries; "
             + (f"{_setting(settings, 'autoattack')}; " if "autoattack" in evaluation["attacks"] else "")
             + f"surrogate `{evaluation.get('surrogate')}`; {evaluation['seconds']:.0f} s.", "",
             f"Command: `{command}`", "",
             "| ε | " + " | ".join(names) + " | worst case |", "|---|" + "---|" * (len(names) + 1)]
    for i, e in enumerate(evaluation["eps"]):
        parts.append(f"| {eps_lib.label(e, evaluation['dataset'])} | " + " | ".join(
            f"{100 * evaluation['attacks'][n]['accuracy'][i]:.1f}" for n in names)
            + f" | {100 * evaluation['worst_case']['accuracy'][i]:.1f} |")
    parts += ["", "| check | result | detail |", "|---|---|---|"]
    parts += [f"| {c['check']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |"
              for c in evaluation["checks"]]
    verdict = "possible gradient masking" if evaluation["masking_suspected"] else "no sign of gradient masking"
    return "\n".join(parts + ["", f"Verdict: {verdict}.", ""])


def _crossing(eps, accuracy, target):
    """The ε where a falling accuracy curve meets `target`, interpolated linearly; None if it never does."""
    for (e0, a0), (e1, a1) in zip(zip(eps, accuracy), zip(eps[1:], accuracy[1:])):
        if a0 >= target >= a1 and a0 > a1:
            return e0 + (e1 - e0) * (a0 - target) / (a0 - a1)
    return None


def study_run(records: list[RunRecord], cell: study_lib.StudyCell) -> RunRecord | None:
    """Our run of a study cell's model, a full budget preferred; None if there is none."""
    return ledger_lib.preferred([r for r in records if cell.matches(r)])


def column_eps(records, study):
    """{(dataset, column): (ε, reasoning)}: each adversarial column's ε, where our full-precision 8-bit curves meet
    the study's numbers (the model least sensitive to our design choices), median over its cells, on our grid."""
    found = collections.defaultdict(list)
    for cell in study:
        run = study_run(records, cell)
        if cell.column == "clean" or run is None or cell.key[2:] != ("full", 8, False) or \
                ledger_lib.reduced_budget(run):
            continue
        crossing = _crossing(run.sweep["eps"], run.sweep["accuracy"], cell.accuracy)
        if crossing is not None:
            found[(cell.dataset, cell.column)].append((crossing, cell))
    inferred = {}
    for (dataset, column), crossings in found.items():
        middle = statistics.median(c for c, _ in crossings)
        nearest = min(presets.get(dataset).sweep_eps, key=lambda e: abs(e - middle))
        reasoning = "; ".join(f"{c.arch} full 8-bit meets the study's {pct(c.accuracy)} at ε≈{e:.3f}"
                              for e, c in crossings)
        inferred[(dataset, column)] = (nearest, f"{reasoning} → ε={eps_lib.label(nearest, dataset)} (nearest on "
                                                f"our grid)")
    return inferred


def study_section(records, study, options):
    """The study's transcribed cells beside ours, with the ε inferred for each adversarial column."""
    inferred = column_eps(records, study)
    parts = ["## The study beside us", "",
             f"The study's cells transcribed so far (`{options.study_path}`; its source column says where each number "
             "comes from), next to our run of the same model (full budget where we have one). The study's ε column "
             "headers are lost in the text we have; each adversarial column's ε is inferred from our full-precision "
             "8-bit FGSM curve, the model least sensitive to our design choices: the ε where that curve meets the "
             "study's number.", ""]
    columns = sorted({(c.dataset, c.column) for c in study if c.column != "clean"})
    parts += [f"- {dataset} `{column}`: " + (inferred[(dataset, column)][1] if (dataset, column) in inferred else
                                             "not inferred yet (no full-budget full-precision 8-bit run meets it)")
              for dataset, column in columns]
    parts += [f"- {dataset}: none of the study's adversarial cells is transcribed yet, so its ε columns cannot be "
              f"inferred; add them to `{options.study_path}` and rerun with `--report_only`"
              for dataset in sorted({c.dataset for c in study} - {d for d, _ in columns})] + [""]
    parts += ["| table | data set | model | column | ε | the study | ours | our run's budget |",
              "|---|---|---|---|---|---|---|---|"]
    for cell in study:
        run = study_run(records, cell)
        eps = None if cell.column == "clean" else inferred.get((cell.dataset, cell.column), (None,))[0]
        ours = None
        if run is not None and cell.column == "clean":
            ours = run.clean_accuracy
        elif run is not None and eps is not None:
            ours = run.fgsm_at(eps)
        eps_text = "–" if cell.column == "clean" else ("?" if eps is None else eps_lib.label(eps, cell.dataset))
        budget = "not run" if run is None else (ledger_lib.reduced_budget(run) or f"full ({run.epochs} epochs)")
        parts.append(f"| {cell.table} | {cell.dataset} | {cell.arch} {cell.model_label} | {cell.column} | "
                     f"{eps_text} | {pct(cell.accuracy)} | {'–' if ours is None else pct(ours)} | {budget} |")
    return "\n".join(parts + [""])


ACTIVATION_EXAMPLES = 1000


def fig6_runs(records: list[RunRecord]) -> list[RunRecord]:
    """The runs of Fig. 6: the MNIST FCNs with 8-bit inputs, full precision and BNN, no adversarial training."""
    return [r for r in records if r.dataset == "mnist" and r.arch in ("fcn1", "fcn2") and r.input_bits == 8
            and not r.adv_train and r.precision in ("full", "bnn")]


def _fig6_label(record):
    return f"{record.arch} {record.precision} ({ledger_lib.reduced_budget(record) or 'full budget'})"


def fig6_section(analyses, records, options):
    """Fig. 6: the first hidden layer's activations on clean and FGSM inputs, MNIST FCNs, full vs BNN, 8-bit."""
    runs = [r for r in fig6_runs(records) if r.run_dir in analyses]
    if not runs:
        return None
    eps = list(presets.get("mnist").report_eps)
    parts = ["## Fig. 6: first-layer activations under attack", "",
             f"`tfdisc.analysis.activation_l1` on the first {ACTIVATION_EXAMPLES} test images: a(x) is the first hidden "
             "layer's output as the second layer sees it (ReLU output in full precision, ±1 signs in a BNN), x_adv is "
             "FGSM (BPDA) at ε.", "",
             "| model | units | mean activation magnitude per unit | " + " | ".join(
                 f"‖Δa‖₁ / ‖a(x)‖₁ at ε={e:g}" for e in eps) + " |", "|---|---|---|" + "---|" * len(eps)]
    for r in runs:
        found = analyses[r.run_dir]
        share = {round(e, 6): c / a for e, c, a in zip(found["eps"], found["change_l1"], found["clean_l1"])}
        parts.append(f"| {_fig6_label(r)} | {found['units']} | {found['clean_l1'][0] / found['units']:.3f} | "
                     + " | ".join(f"{share[round(e, 6)]:.3f}" if round(e, 6) in share else "–" for e in eps) + " |")
    return "\n".join(parts + ["", f"![activations]({options.figures_dir}/mnist_activation_l1.png)", ""])


def ledger_section(records, study, analyses):
    """The claim ledger as a table: claim, source, rule, a verdict per attack, and the evidence."""
    rows = ledger_lib.ledger(records, study, analyses)
    parts = ["## The study's claims, judged", "",
             "Each claim, then the rule that judges it, computed by `tfdisc.reporting.ledger` from the results above; "
             "one verdict under FGSM (the study's attack) and one under the AutoAttack worst case. Source \"abstract\" "
             "marks claims the study's abstract makes (arXiv:1902.03151); \"IEEE Access abstract\" marks the two that "
             "the abstract of its published version (IEEE Access 7, 2019, doi:10.1109/ACCESS.2019.2919463) adds; the "
             "others follow issue 12's list, in our words, until the study's text is transcribed. A gate checks "
             "the runs first: a claim is *not run* on a setup when a run or attack it needs is missing; otherwise it "
             f"is *inconclusive* when a run it needs had a reduced budget or sits more than "
             f"{100 * ledger_lib.CLEAN_GAP:.0f} points of clean accuracy below the study's (where the study's clean "
             "accuracy is transcribed), and its numbers follow \"not judged\". "
             f"\"Beats\" means by more than {100 * ledger_lib.MARGIN['margin']:.0f} points.", "",
             "| # | the study's claim | source | rule | verdict under FGSM | verdict under AutoAttack (worst case) | "
             "evidence |", "|---|---|---|---|---|---|---|"]
    for number, (claim, judged) in enumerate(rows, 1):
        verdicts = [judged.get(name, judged.get("clean", ("–", "")))[0] for name in ledger_lib.ATTACKS.values()]
        if "clean" in judged or "AutoAttack" not in judged:
            verdicts[1] = "– (clean accuracy)" if "clean" in judged else "– (an FGSM analysis)"
        elif "FGSM" not in judged:
            verdicts[0] = "– (AutoAttack against FGSM)"
        evidence = " ".join(f"*{name}:* {detail}" for name, (_, detail) in judged.items())
        parts.append(f"| {number} | {claim.words} | {claim.source} | {claim.rule_text} | {' | '.join(verdicts)} | "
                     f"{evidence} |")
    return "\n".join(parts + [""])


def _group_order(key):
    dataset, arch, budget = key
    return list(presets.DATASETS).index(dataset), budget.startswith("reduced"), arch


def _adversarial_training_note():
    settings = "; ".join(f"{name}: ε={eps_lib.label(p.adv_eps, name)}, α={eps_lib.label(p.adv_alpha, name)}"
                         for name, p in presets.DATASETS.items())
    return f"\"+ adv\" is R-FGSM adversarial training (Tramèr et al. 2018) at the experiments' default budget ({settings})."


def groups(records: list[RunRecord]) -> dict:
    """{(dataset, arch, budget): records}: the report's tables, one per data set, architecture and budget label."""
    found = collections.defaultdict(list)
    for r in records:
        found[(r.dataset, r.arch, r.budget)].append(r)
    return dict(found)


def report(records: list[RunRecord], study: list, evaluations: list[dict], analyses: dict,
           options: ReportOptions) -> str:
    """REPORT.md: the introduction, a section per group of runs, the study beside us, the ledger, Fig. 6, the
    robustness reports of `scripts/evaluate.py`, and the notes."""
    parts = ["# Reproduction report", "",
             "Accuracies (%) on real test data. FGSM columns: white-box FGSM, x_adv = clip(x + ε·sign(∇x L), 0, 1), "
             "over the test examples stated for each table. Gradients pass straight through the input "
             "discretization (BPDA, `gradient=identity`). FGSM is a single-step attack, so its numbers are upper "
             "bounds on robustness. PGD, AutoAttack and worst-case columns, where present, come from the robustness "
             "report on the subset stated below the table; each claim is judged under FGSM and, where every model "
             f"it involves was attacked, under AutoAttack. {_adversarial_training_note()} Generated by "
             "`scripts/reproduce_paper.py` from the runs' records (`results.json`, `config.json`, `history.csv`, "
             "committed under `runs/paper/`); their models and checkpoints are not committed.", ""]
    found = groups(records)
    parts += [group_section(*key, found[key], options) for key in sorted(found, key=_group_order)]
    parts += [study_section(records, study, options), ledger_section(records, study, analyses)]
    fig6 = fig6_section(analyses, records, options)
    parts += [fig6] if fig6 else []
    if evaluations:
        parts += ["## Robustness reports: is the robustness real?", "",
                  "Made by `scripts/evaluate.py` (each with its command). `gradient` is how the input discretization "
                  "passes gradients to the white-box attacks: `identity` is straight-through (BPDA); `zero` is the "
                  "true derivative of the quantizer, which masks gradients. PGD uses a random start and step "
                  "2.5·ε/steps; Square is gradient-free; transfer is FGSM crafted on the surrogate.", ""]
        parts += [evaluation_section(e, options) for e in evaluations]
    if options.notes:
        parts += [options.notes]
    return "\n".join(parts)


def figures(records: list[RunRecord], analyses: dict, report_dir: Path, options: ReportOptions) -> None:
    """Draw the figures `report` links to, under `report_dir`."""
    for (dataset, arch, budget), group in groups(records).items():
        plotting.plot_accuracy_vs_eps(_group_curves(group), str(report_dir / figure_path(dataset, arch, budget, options)),
                                      f"{dataset} {arch}: FGSM (BPDA) accuracy vs ε")
    runs = [r for r in fig6_runs(records) if r.run_dir in analyses]
    if runs:
        plotting.plot_activation_l1({_fig6_label(r): analyses[r.run_dir] for r in runs},
                                    str(report_dir / options.figures_dir / "mnist_activation_l1.png"),
                                    "MNIST, first hidden layer under FGSM (BPDA), 8-bit input")


# ---- README's results at a glance ----------------------------------------------------------------------------

GLANCE_MODELS = (("full", 8, False, "full precision, 8-bit input"), ("full", 2, False, "full precision, 2-bit input"),
                 ("bnn", 8, False, "BNN, 8-bit input"), ("bnn", 2, False, "BNN, 2-bit input"),
                 ("full", 8, True, "full precision + R-FGSM training, 8-bit"))
GLANCE_SETUPS = (("mnist", "fcn2", "MNIST, FCN2 (784-600×4-10)", "FCN2"),  # dataset, arch, caption, column name
                 ("cifar10", "alexnet", "CIFAR-10, AlexNet", "AlexNet"))


def _glance_table(records, dataset, arch, caption, column):
    """The setup's full-budget GLANCE_MODELS under FGSM and AutoAttack at the report ε; [] without such runs."""
    runs = [r for r in records if (r.dataset, r.arch) == (dataset, arch) and not ledger_lib.reduced_budget(r)]
    by_model = {r.key[2:]: r for r in reversed(runs)}  # the first of duplicates
    rows = [(name, by_model[(precision, bits, adv)]) for precision, bits, adv, name in GLANCE_MODELS
            if (precision, bits, adv) in by_model]
    if not rows:
        return []
    eps = list(presets.get(dataset).report_eps)
    recipes = sorted({r.recipe for _, r in rows} - {"constant"})
    recipe = f" (`--recipe={', '.join(recipes)}`)" if recipes else ""
    lines = [f"{caption} trained for {rows[0][1].epochs} epochs on all training images{recipe}; "
             "FGSM with straight-through (BPDA) gradients on the whole test set, AutoAttack (standard cascade) on the "
             "subset REPORT.md states.", "",
             f"| {column}, accuracy % | clean | " + " | ".join(
                 f"{a} ε={eps_lib.label(e, dataset)}" for e in eps for a in ("FGSM", "AutoAttack")) + " |",
             "|---|---|" + "---|" * 2 * len(eps)]
    for name, run in rows:
        cells = [run.clean_accuracy] + [v for e in eps for v in (run.fgsm_at(e), run.attack_at("autoattack", e))]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{100 * v:.1f}" for v in cells) + " |")
    return lines + [""]


def glance(records: list[RunRecord]) -> str:
    """README's results at a glance: a table per GLANCE_SETUPS setup with full-budget runs, then how much of each
    of the study's setups these runs cover."""
    lines = [line for setup in GLANCE_SETUPS for line in _glance_table(records, *setup)]
    lines += ["How much of the study these runs cover (input bits × precision × adversarial training):", ""]
    for arch, spec in models.ARCHITECTURES.items():
        runs = [r for r in records if r.arch == arch]
        full = sorted({r.model_label for r in runs if not ledger_lib.reduced_budget(r)})
        reduced = sorted({r.model_label for r in runs if ledger_lib.reduced_budget(r)})
        parts = ([f"{len(full)} model(s) at the study's budget ({spec.epochs} epochs): {', '.join(full)}"] if full else []
                 ) + ([f"{len(reduced)} at a reduced budget: {', '.join(reduced)}"] if reduced else [])
        lines.append(f"- {spec.dataset} {arch}: " + ("; ".join(parts) if parts else "not run on this machine") + ".")
    return "\n".join(lines)


README_BEGIN = "<!-- results at a glance: written by scripts/reproduce_paper.py from the runs behind REPORT.md -->"
README_END = "<!-- end of results at a glance -->"


def with_glance(readme: str, records: list[RunRecord]) -> str | None:
    """`readme` with the text between its results markers replaced by `glance(records)`; None without markers."""
    if README_BEGIN not in readme or README_END not in readme:
        return None
    head, rest = readme.split(README_BEGIN, 1)
    return f"{head}{README_BEGIN}\n{glance(records)}\n{README_END}{rest.split(README_END, 1)[1]}"
