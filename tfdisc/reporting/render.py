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
from tfdisc.reporting import certified as certified_lib
from tfdisc.reporting import fit as fit_lib
from tfdisc.reporting import ledger as ledger_lib
from tfdisc.reporting import protocols as protocols_lib
from tfdisc.reporting import stats
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
        values = [(r.clean_accuracy, r.test_examples)] + [(r.fgsm_at(e), r.test_examples) for e in eps_list] + [
            (r.attack_at(name, e), r.attack_examples or r.test_examples) for name in extra for e in eps_list]
        cells = [r.label, f"{r.input_bits}-bit"] + [_measured(v, n, dataset) for v, n in values]
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


def _measured(value, examples, dataset) -> str:
    """An accuracy in %, with its 95% Wilson interval when measured on a subset of the test set; "–" for None."""
    if value is None:
        return "–"
    return stats.measured(value, examples, subset=examples < presets.get(dataset).test_size).text()


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
    dataset, examples = evaluation["dataset"], evaluation["examples"]
    for i, e in enumerate(evaluation["eps"]):
        parts.append(f"| {eps_lib.label(e, dataset)} | " + " | ".join(
            _measured(evaluation["attacks"][n]["accuracy"][i], examples, dataset) for n in names)
            + f" | {_measured(evaluation['worst_case']['accuracy'][i], examples, dataset)} |")
    parts += ["", "| check | result | detail |", "|---|---|---|"]
    parts += [f"| {c['check']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |"
              for c in evaluation["checks"]]
    verdict = "possible gradient masking" if evaluation["masking_suspected"] else "no sign of gradient masking"
    return "\n".join(parts + ["", f"Verdict: {verdict}.", ""])


def study_run(records: list[RunRecord], cell: study_lib.StudyCell) -> RunRecord | None:
    """Our run of a study cell's model: at the cell's own budget (its table's epochs, every training image) if we
    have one, else the closest to it; None if there is none."""
    runs = [r for r in records if cell.matches(r)]
    at_budget = [r for r in runs if r.epochs == (cell.epochs or r.epochs) and not r.train_examples]
    return (at_budget or sorted(runs, key=lambda r: (r.train_examples is not None, abs(r.epochs - (cell.epochs or 0))))
            or [None])[0]


def _budget_note(run: RunRecord | None, cell: study_lib.StudyCell) -> str:
    if run is None:
        return "not run"
    if (run.epochs == cell.epochs or cell.epochs is None) and not run.train_examples:
        return f"{run.epochs} epochs" + (", as the study" if cell.epochs else "")
    images = f", {run.train_examples} training images" if run.train_examples else ""
    return f"{run.epochs} epochs{images} (the study: {cell.epochs})"


def _table_groups(study):
    """{(table, dataset): [cells]} in the study's order."""
    groups = {}
    for cell in study:
        groups.setdefault((cell.table, cell.dataset), []).append(cell)
    return groups


def _fit_rows(cells, curve_of):
    """fit.Row per model of `cells` whose curve `curve_of(cell)` gives (None: no run at the study's budget)."""
    rows = {}
    for cell in cells:
        curve = curve_of(cell)
        if curve is not None:
            rows.setdefault(cell.model_label, fit_lib.Row(cell.model_label, curve, {}))
            rows[cell.model_label].cells[cell.column] = cell.accuracy
    return list(rows.values())


def _adversarial_columns(cells):
    return sorted({c.column for c in cells if c.column != "clean"})


def table_fits(records: list[RunRecord],
               study: list[study_lib.StudyCell]) -> dict[tuple[str, str], list[fit_lib.ColumnFit]]:
    """{(table, dataset): [ColumnFit]} of every study table with adversarial columns, against our runs at the
    study's budget (standard protocol)."""
    def curve_of(cell):
        run = study_run(records, cell)
        return run.sweep if run is not None and run.epochs == (cell.epochs or run.epochs) and \
            not run.train_examples else None

    return {key: fit_lib.fit_table(_fit_rows(cells, curve_of), _adversarial_columns(cells),
                                   presets.get(key[1]).sweep_eps)
            for key, cells in _table_groups(study).items() if _adversarial_columns(cells)}


def _cell_text(study_value, ours):
    if ours is None:
        return f"{100 * study_value:.1f} / –"
    return f"{100 * study_value:.1f} / {100 * ours:.1f} ({100 * (ours - study_value):+.1f})"


def _dataset_title(dataset):
    return {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(dataset, dataset)


def study_tables_section(records: list[RunRecord], study: list[study_lib.StudyCell], options: ReportOptions) -> str:
    """One table per study table: each of the study's cells beside ours at the fitted ε, and the difference."""
    fits = table_fits(records, study)
    parts = ["## The study beside us", "",
             f"Every cell of the study's Tables 1–6, transcribed in `{options.study_path}` (its `setup` column quotes "
             "the text that fixes each row's setup: data set, network, epochs, input bits, precision, adversarial "
             "training), beside our run of the same model. Each cell reads *the study / ours (ours − the study)*, "
             "in %. The study's ε column headers are lost in the text we have; each adversarial column's ε is the "
             "one fitted below (least squares over our sweep grid, all rows of the table at once), and ours is our "
             "FGSM accuracy (BPDA, every test image) there. The last column says which budget our run had.", ""]
    by_table = {}
    for (table, dataset), cells in _table_groups(study).items():
        by_table.setdefault(table, []).append((dataset, cells))
    for table, groups in by_table.items():
        columns = sorted({c.column for _, cells in groups for c in cells}, key=lambda c: (c != "clean", c))
        parts += [f"### Table {table}", ""]
        heads = []
        for column in columns:
            fitted = {eps_lib.label(f.eps, d) for d, _ in groups for f in fits.get((table, d), []) if f.column == column}
            heads.append(column if column == "clean" else f"{column} (ε {', '.join(sorted(fitted)) or '?'})")
        parts += ["| model | " + " | ".join(heads) + " | our run |", "|---|" + "---|" * (len(columns) + 1)]
        for dataset, cells in groups:
            eps_of = {f.column: f.eps for f in fits.get((table, dataset), [])}
            for label in dict.fromkeys(c.model_label for c in cells):
                row = {c.column: c for c in cells if c.model_label == label}
                first = next(iter(row.values()))
                run = study_run(records, first)
                texts = []
                for column in columns:
                    cell = row.get(column)
                    if cell is None:
                        texts.append("")
                        continue
                    ours = None
                    if run is not None:
                        ours = run.clean_accuracy if column == "clean" else (
                            run.fgsm_at(eps_of[column]) if column in eps_of else None)
                    texts.append(_cell_text(cell.accuracy, ours))
                parts.append(f"| {_dataset_title(dataset)} {first.arch} {label} | " + " | ".join(texts)
                             + f" | {_budget_note(run, first)} |")
        parts.append("")
    return "\n".join(parts)


def fit_section(records: list[RunRecord], study: list[study_lib.StudyCell],
                protocol_records: list[protocols_lib.ProtocolRecord]) -> str:
    """The lost ε recovered per table and data set, with each cell's residual, and the protocol hypotheses."""
    fits = table_fits(records, study)
    groups = _table_groups(study)
    parts = ["## The lost ε, recovered by fitting", "",
             "For each table and data set, each adversarial column's ε is the point of our sweep grid that minimizes "
             "the squared differences between our FGSM curves and the study's cells, summed over every row we have "
             "a run of at the study's budget. A residual is ours − the study's, in points, at the fitted ε. A column "
             f"fits when every residual is within {100 * fit_lib.FIT_TOLERANCE:.0f} points (`tfdisc.reporting.fit`).",
             ""]
    for (table, dataset), column_fits in fits.items():
        rows = sorted({label for f in column_fits for label in f.residuals})
        parts += [f"### Table {table}, {_dataset_title(dataset)}", ""]
        if not column_fits:
            parts += ["No row of this table has a run at the study's budget yet.", ""]
            continue
        parts += ["| column | fitted ε | " + " | ".join(f"residual, {r}" for r in rows) + " | squared error | fits |",
                  "|---|---|" + "---|" * len(rows) + "---|---|"]
        for f in column_fits:
            cells = [f"{100 * f.residuals[r]:+.1f}" if r in f.residuals else "–" for r in rows]
            parts.append(f"| {f.column} | {eps_lib.label(f.eps, dataset)} | " + " | ".join(cells)
                         + f" | {1e4 * f.sse:.0f} | {'yes' if f.fits else '**no**'} |")
        within, total = fit_lib.cells_within(column_fits)
        failing = [f.column for f in column_fits if not f.fits]
        parts += ["", f"Total squared error {1e4 * fit_lib.total_error(column_fits):.0f} points²; {within} of {total} "
                      "cells within the tolerance. " + (
                          "One ε per column fits every row." if not failing else
                          f"No single ε fits column{'s' if len(failing) > 1 else ''} {', '.join(failing)}: at any one "
                          "ε of our grid, some rows sit more than the tolerance from the study's."), ""]
        parts += _protocol_lines(table, dataset, groups[(table, dataset)], protocol_records)
    return "\n".join(parts)


def _protocol_lines(table, dataset, cells, protocol_records):
    """The hypotheses' fits of one table and data set, from the protocol records (a run of another network of the
    data set stands in where the study's is not run, and says so)."""
    mine = [r for r in protocol_records if r.dataset == dataset]
    if not mine:
        return []

    def record_for(hypothesis, cell):
        same = [r for r in mine if r.hypothesis == hypothesis and r.key[2:] == cell.key[2:]]
        exact = [r for r in same if r.arch == cell.arch and r.epochs == cell.epochs]
        return (exact or same or [None])[0]

    lines = ["Protocol hypotheses, each fitted the same way to the curves of runs evaluated under it "
             "(`scripts/study_protocols.py`, `tfdisc.evaluation.protocols`). A hypothesis is judged only where its runs "
             "cover every row the standard fit covers.", "",
             "| hypothesis | runs | fitted ε per column | cells within the tolerance | squared error | cells it does not "
             "reproduce |", "|---|---|---|---|---|---|"]
    scores, rows_needed = {}, None
    for hypothesis, (_, _, supposes) in protocols_lib.HYPOTHESES.items():
        used = {}

        def curve_of(cell, hypothesis=hypothesis, used=used):
            found = record_for(hypothesis, cell) or (record_for("standard", cell) if hypothesis == "round_quantizer"
                                                      and cell.input_bits == 8 else None)
            if found is not None:
                used[found.run] = f"{found.arch}, {found.epochs} epochs"
            return None if found is None else found.curve

        rows = _fit_rows(cells, curve_of)
        column_fits = fit_lib.fit_table(rows, _adversarial_columns(cells), presets.get(dataset).sweep_eps)
        if not column_fits:
            continue
        rows_needed = len(rows) if hypothesis == "standard" else rows_needed
        complete = rows_needed is not None and len(rows) >= rows_needed
        within, total = fit_lib.cells_within(column_fits)
        if complete:
            scores[hypothesis] = (within, total, fit_lib.total_error(column_fits))
        missed = [f"{label} {f.column} ({100 * r:+.1f})" for f in column_fits for label, r in f.residuals.items()
                  if abs(r) > fit_lib.FIT_TOLERANCE + 1e-9]
        runs = ", ".join(sorted(set(used.values())))
        lines.append(f"| {hypothesis}: {supposes} | {len(rows)} rows ({runs}){'' if complete else ', not every row'} | "
                     + ", ".join(f"{f.column} {eps_lib.label(f.eps, dataset)}" for f in column_fits)
                     + f" | {within} of {total} | {1e4 * fit_lib.total_error(column_fits):.0f} | "
                     + (", ".join(missed) or "none") + " |")
    if not scores:
        return []
    proxies = sorted({r.arch for r in mine} - {c.arch for c in cells})
    explains = [h for h, (within, total, _) in scores.items() if within == total]
    closest = min(scores, key=lambda h: scores[h][2])
    verdict = (f"{', '.join(explains)} explain{'s' if len(explains) == 1 else ''} every fitted cell" if explains else
               f"no hypothesis explains every cell; {closest} comes closest (the smallest squared error, "
               f"{scores[closest][0]} of {scores[closest][1]} cells within the tolerance)")
    note = (f" The runs are {', '.join(proxies)} standing in for the study's {cells[0].arch}, so this verdict is about "
            "how the protocols behave, not yet about the study's own network." if proxies else "")
    return lines + ["", f"Verdict (rule: a protocol explains a table when all its fitted cells are within "
                        f"{100 * fit_lib.FIT_TOLERANCE:.0f} points of the study's): {verdict}.{note}", ""]


RECIPE_TARGET = 0.76  # within 5 points of the study's 81–82% clean accuracy for CIFAR-10 AlexNet-BNN


def recipe_runs(records: list[RunRecord]) -> list[RunRecord]:
    """CIFAR-10 AlexNet-BNN runs trained short, to compare recipes: the recipe trials and the reduced runs."""
    return [r for r in records if (r.dataset, r.arch, r.precision, r.adv_train) == ("cifar10", "alexnet", "bnn", False)
            and r.epoch_accuracy and r.epochs < models.ARCHITECTURES["alexnet"].epochs]


def _recipe_label(record):
    return f"{record.recipe}, {record.input_bits}-bit, {record.epochs} epochs"


def recipes_section(records: list[RunRecord], options: ReportOptions) -> str:
    """CIFAR-10 AlexNet-BNN's clean accuracy after each epoch, per recipe: which reaches the study within 5 points
    in the fewest epochs."""
    runs = recipe_runs(records)
    if not runs:
        return None
    longest = max(len(r.epoch_accuracy) for r in runs)
    per_epoch = statistics.median(r.train_seconds / len(r.epoch_accuracy) for r in runs)
    parts = ["## CIFAR-10 AlexNet-BNN: clean accuracy per epoch, by recipe", "",
             f"These runs took {per_epoch:.0f} s an epoch (median; {_cores(runs)}), so the study's 40 epochs would "
             f"take {40 * per_epoch / 3600:.0f} h a run: recipes (`tfdisc.recipes`) are compared on short runs first, "
             f"for the one that reaches {100 * RECIPE_TARGET:.0f}% (within 5 points of the study's 81–82%) in the "
             "fewest epochs. Validation accuracy after each epoch (`history.csv`), on the run's test images.", "",
             "| recipe | run | " + " | ".join(f"epoch {e}" for e in range(1, longest + 1)) + " | first epoch ≥ "
             f"{100 * RECIPE_TARGET:.0f}% |", "|---|---|" + "---|" * (longest + 1)]
    for r in sorted(runs, key=lambda r: (r.recipe, r.input_bits)):
        cells = [f"{100 * a:.1f}" for a in r.epoch_accuracy] + [""] * (longest - len(r.epoch_accuracy))
        reached = next((e for e, a in enumerate(r.epoch_accuracy, 1) if a >= RECIPE_TARGET), None)
        parts.append(f"| {_recipe_label(r)} | `{Path(r.run_dir).parent.name}/{Path(r.run_dir).name}` | "
                     + " | ".join(cells) + f" | {reached or 'not reached'} |")
    return "\n".join(parts + ["", f"![recipes]({options.figures_dir}/cifar10_bnn_recipes.png)", ""])


ACTIVATION_EXAMPLES = 1000


def fig6_runs(records: list[RunRecord]) -> list[RunRecord]:
    """The runs of Fig. 6: the MNIST FCNs with 8-bit inputs, full precision and BNN, no adversarial training."""
    return [r for r in records if r.dataset == "mnist" and r.arch in ("fcn1", "fcn2") and r.input_bits == 8
            and not r.adv_train and r.precision in ("full", "bnn")]


def _fig6_label(record):
    return f"{record.arch} {record.precision} ({ledger_lib.reduced_budget(record) or 'full budget'})"


def fig6_section(analyses: dict, records: list[RunRecord], options: ReportOptions) -> str:
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


def _verdict_cells(judged: dict) -> list[str]:
    """A claim's verdict under each of `ledger.ATTACKS`, or why that column does not judge it."""
    if "clean" in judged:
        return [judged["clean"][0]] + ["– (clean accuracy)"] * (len(ledger_lib.ATTACKS) - 1)
    why = "– (an FGSM analysis)" if list(judged) == ["FGSM"] else "– (AutoAttack against FGSM)"
    return [judged[name][0] if name in judged else why for name in ledger_lib.ATTACKS.values()]


def ledger_section(records: list[RunRecord], study: list[study_lib.StudyCell], analyses: dict,
                   brackets: list[certified_lib.CertificationRecord] = ()) -> str:
    """The claim ledger as a table: claim, the study's words, rule, a verdict per attack, and the evidence."""
    rows = ledger_lib.ledger(records, study, analyses, brackets)
    parts = ["## The study's claims, judged", "",
             "Each claim in a few words, then in the study's own words with the line of its text they come from "
             "(arXiv:1902.03151 as extracted in `../shared/study/`; \"[…]\" marks math the extraction lost), then "
             "the rule that judges it, computed by `tfdisc.reporting.ledger` from the results above; one verdict under "
             "FGSM (the study's attack), one under the AutoAttack worst case, and one under the certified bracket "
             "(\"Robustness bracketed\" below): there each robust accuracy is only known to lie in [certified, "
             "attacked], each end widened to its 95% interval, the ends of a difference add up linearly, and a "
             "bracket counts for the run of the same setup (training here is deterministic), so a verdict holds for "
             "the true robust accuracy; one its lower bounds decide reads *holds (certified)*. A gate checks the runs "
             "first: a claim is *not run* on a setup when a run or attack it needs is missing; otherwise it is *inconclusive* "
             "when a run it needs had a reduced budget or sits more than "
             f"{100 * ledger_lib.CLEAN_GAP:.0f} points of clean accuracy below the study's, and its numbers follow "
             f"\"not judged\". Every rule also reads: {ledger_lib.INTERVAL_RULE}. \"Beats\" means by more than "
             f"{100 * ledger_lib.MARGIN['margin']:.0f} points.", "",
             "| # | the claim | the study's words (line) | rule | verdict under FGSM | verdict under AutoAttack (worst "
             "case) | verdict under the certified bracket | evidence |", "|---|---|---|---|---|---|---|---|"]
    for number, (claim, judged) in enumerate(rows, 1):
        verdicts = _verdict_cells(judged)
        evidence = " ".join(f"*{name}:* {detail}" for name, (_, detail) in judged.items())
        parts.append(f"| {number} | {claim.summary} | “{claim.words}” ({claim.line}) | {claim.rule_text} | "
                     f"{' | '.join(verdicts)} | {evidence} |")
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


def certified_section(certification_records: list[certified_lib.CertificationRecord],
                      options: ReportOptions) -> str:
    """Robustness bracketed: per model and ε, the certified accuracy (a lower bound) and the attacked one (an upper
    bound) on the same images, each with its 95% interval, and what decided the examples."""
    if not certification_records:
        return None
    parts = ["## Robustness bracketed: certified and attacked", "",
             "`scripts/certify.py` (`tfdisc.certification.bracket`): on the first test images, the bounds certify what "
             "they can (interval bounds, then the linear relaxation the bound column names, with every input of the "
             "boxes that hold at most 2^16, or as the bound column states, evaluated), the attack cascade runs on the "
             "rest only, branch and bound "
             "(splitting pixels' levels or ReLU and sign units, as the bound column names) tries the attacks' "
             "survivors for the seconds or parts (boxes it bounds) an image the bound column states, and what is "
             "left is unknown. The true "
             "robust accuracy lies in [certified, attacked]; each end carries its 95% interval (Wilson). Models "
             "retrained for this from the same seeds reproduce the committed runs' records exactly. \"Undecided "
             "units\" is, over the images the bounds leave, the median number of ReLU or sign units per hidden "
             "layer whose side the bound column's relaxation cannot fix: each one loosens the bound. Seconds are wall "
             "clock, so time a bracket shared the CPU counts too; a budget of parts makes the verdicts independent of "
             "it.", "",
             "| model | run | ε | images | certified | attacked | gap | bound | undecided units | decided by "
             "| attacks ran on | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(certification_records, key=lambda r: (r.dataset, r.arch, r.precision != "full", r.precision,
                                                         r.adv_train, r.input_bits)):
        label = f"{_dataset_title(r.dataset)} {r.arch} {r.precision}{' + adv' if r.adv_train else ''} {r.input_bits}-bit"
        for i, e in enumerate(r.eps):
            decided = ", ".join(f"{m} {c}" for m, c in r.methods[i].items())
            limits = [f"{r.time_limit:g} s"] if r.time_limit else []
            limits += [f"{r.max_domains} parts"] if r.max_domains else []
            bound = r.bound + (f", branch and bound ({r.split}) ≤ {' or '.join(limits)} an image" if limits else "")
            if r.enumeration_limit != 2**16:
                bound += f", enumeration of boxes ≤ {_power_of_two(r.enumeration_limit)} inputs"
            subset = r.examples < presets.get(r.dataset).test_size
            parts.append(f"| {label} | `{r.run}` | {eps_lib.label(e, r.dataset)} | {r.examples} | "
                         f"{stats.measured(r.certified[i], r.examples, subset).text()} | "
                         f"{stats.measured(r.attacked[i], r.examples, subset).text()} | {100 * r.gap[i]:.1f} | "
                         f"{bound} | {_undecided_text(r, i)} | {decided} | {r.attacked_examples[i]} ({r.version}) | "
                         f"{r.seconds:.0f} |")
    return "\n".join(parts + [""])


def _power_of_two(count: int) -> str:
    """"2^20" for a power of two, else the count."""
    return f"2^{count.bit_length() - 1}" if count > 0 and count & (count - 1) == 0 else str(count)


def _undecided_text(record: certified_lib.CertificationRecord, index: int) -> str:
    """"216, 323 of 600" (one width) or "216 of 600, 12 of 10": the median undecided units per activation at ε
    number `index`, or "–" where the record has none."""
    counts = record.undecided[index] if record.undecided else None
    if counts is None:
        return "–"
    if len(set(record.units)) == 1:
        return f"{', '.join(f'{c:.0f}' for c in counts)} of {record.units[0]}"
    return ", ".join(f"{c:.0f} of {u}" for c, u in zip(counts, record.units))


def report(records: list[RunRecord], study: list, evaluations: list[dict], analyses: dict,
           options: ReportOptions, protocol_records: list = (), certification_records: list = ()) -> str:
    """REPORT.md: the introduction, a section per group of runs, the study beside us, the ledger, Fig. 6, the
    robustness reports of `scripts/evaluate.py`, and the notes."""
    parts = ["# Reproduction report", "",
             "Accuracies (%) on real test data. FGSM columns: white-box FGSM, x_adv = clip(x + ε·sign(∇x L), 0, 1), "
             "over the test examples stated for each table. Gradients pass straight through the input "
             "discretization (BPDA, `gradient=identity`). FGSM is a single-step attack, so its numbers are upper "
             "bounds on robustness. PGD, AutoAttack and worst-case columns, where present, come from the robustness "
             "report on the subset stated below the table; each claim is judged under FGSM, where every model "
             "it involves was attacked, under AutoAttack, and where every model it involves was bracketed, under "
             "[certified, attacked]. A number measured on a subset of the test set carries its "
             f"95% interval (Wilson) in brackets. {_adversarial_training_note()} Generated by "
             "`scripts/reproduce_paper.py` from the runs' records (`results.json`, `config.json`, `history.csv`, "
             "committed under `runs/paper/`); their models and checkpoints are not committed.", ""]
    found = groups(records)
    parts += [group_section(*key, found[key], options) for key in sorted(found, key=_group_order)]
    parts += [study_tables_section(records, study, options), fit_section(records, study, protocol_records),
              ledger_section(records, study, analyses, certification_records)]
    fig6 = fig6_section(analyses, records, options)
    parts += [fig6] if fig6 else []
    recipes = recipes_section(records, options)
    parts += [recipes] if recipes else []
    bracketed = certified_section(certification_records, options)
    parts += [bracketed] if bracketed else []
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
    trials = recipe_runs(records)
    if trials:
        plotting.plot_accuracy_vs_epoch({_recipe_label(r): r.epoch_accuracy for r in trials},
                                        str(report_dir / options.figures_dir / "cifar10_bnn_recipes.png"),
                                        "CIFAR-10 AlexNet-BNN: clean accuracy per epoch", target=RECIPE_TARGET)
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
             "subset REPORT.md states, with its 95% interval.", "",
             f"| {column}, accuracy % | clean | " + " | ".join(
                 f"{a} ε={eps_lib.label(e, dataset)}" for e in eps for a in ("FGSM", "AutoAttack")) + " |",
             "|---|---|" + "---|" * 2 * len(eps)]
    for name, run in rows:
        cells = [_measured(run.clean_accuracy, run.test_examples, dataset)] + [
            text for e in eps for text in (_measured(run.fgsm_at(e), run.test_examples, dataset),
                                           _measured(run.attack_at("autoattack", e),
                                                     run.attack_examples or run.test_examples, dataset))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
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
