"""Markdown tables of the benchmark scripts' results: one table per part, one row per model."""


def part_tables(parts):
    """Lines of a "### <part>" table per part of {part: {model: {column: value}}}; floats to 3 digits."""
    lines = []
    for part, per_model in parts.items():
        columns = list(dict.fromkeys(name for values in per_model.values() for name in values))
        lines += [f"### {part}", "", "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for key, values in per_model.items():
            cells = [f"{values[c]:.3g}" if isinstance(values.get(c), float) else str(values.get(c, ""))
                     for c in columns]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
