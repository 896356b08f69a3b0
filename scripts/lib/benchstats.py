#!/usr/bin/env python3
"""Benchmark statistics, defined once for every benchmark in the repository (issue #12).

Benchmarks measure and write raw samples; this module alone turns samples into figures, so a "p50" means
the same thing in every table. Standard library only (Python 3.9+): it runs wherever a bench runs.

Raw-sample format: JSON lines, one observation per line,

    {"bench": "serve", "subject": "c8", "metric": "latency_ms", "value": 12.31}

  bench    which benchmark wrote it ("core", "serve", "edge", ...);
  subject  what was measured (an engine, a concurrency level, a contender);
  metric   the quantity, its unit as suffix: latency_ms, load_s, peak_rss_mb, qps, ...;
  value    one observation (a number; not NaN or infinite).

Blank lines are skipped. Any other line that is not such an object is an error naming the file and line.
A measurement taken once (a run's QPS, a peak RSS) is one sample like any other.

Definitions (the only ones):

  percentile(xs, p)  nearest rank: the smallest sample x with at least p % of the samples <= x, i.e.
                     sorted(xs)[ceil(p / 100 * n) - 1]; p = 0 gives the minimum. No interpolation:
                     every figure is a value that was measured.
  median(xs)         percentile(xs, 50): for an even count, the lower of the two middle samples.
  mean(xs)           the arithmetic mean.

Python API (import with `sys.path.insert(0, "<repo>/scripts/lib"); import benchstats`):

  sample_line(bench, subject, metric, value) -> str   one JSON line, for emitters written in Python
  read_samples(lines, source="<stdin>") -> Samples     {(bench, subject, metric): [values in input order]}
  read_files(paths) -> Samples                         the same over files ("-" is stdin)
  percentile(xs, p), median(xs), mean(xs)
  summary(xs, percentiles=(50, 95, 99)) -> dict        n, min, p50, p95, p99, max, mean
  stat(xs, name) -> float                              name: n, min, max, mean, median or pNN (p95, p99.9)
  markdown_table(header, rows) -> str                  a Markdown table of already formatted cells
  ratio_line(label, numerator, denominator, target=None, at_most=True) -> str
                                                       "label = 1.23x (target <= 1.2x: NOT met)"

Command line:

  benchstats.py table [FILE...] [--bench B] [--columns SPEC] [--digits D]
      A Markdown table, one row per (bench, subject), in input order. Without --columns: one row per
      (bench, subject, metric) with n, p50, p95, p99, min, max. With --columns, e.g.
      "qps:median:QPS,latency_ms:p50:p50 ms,latency_ms:p95:p95 ms": one column per METRIC:STAT[:LABEL].
  benchstats.py summary [FILE...] [--bench B]
      One JSON object: {"bench/subject/metric": {n, min, p50, p95, p99, max, mean}, ...}.
  FILE defaults to stdin. Exit status 2 on a malformed sample or an unknown metric in --columns.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

Key = Tuple[str, str, str]
Samples = Dict[Key, List[float]]

FIELDS = ("bench", "subject", "metric", "value")


class SampleError(ValueError):
    """A line that is not a raw sample; the message names where it is."""


def sample_line(bench: str, subject: str, metric: str, value: float) -> str:
    """One raw sample as a JSON line (no trailing newline)."""
    return json.dumps({"bench": bench, "subject": subject, "metric": metric, "value": value})


def read_samples(lines: Iterable[str], source: str = "<stdin>") -> Samples:
    """Groups raw-sample lines by (bench, subject, metric), keeping first-seen order of keys and values."""
    samples: Samples = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SampleError(f"{where}: not JSON ({e.msg}): {line.strip()[:80]!r}") from None
        if not isinstance(record, dict):
            raise SampleError(f"{where}: a sample is a JSON object, got {line.strip()[:80]!r}")
        missing = [f for f in FIELDS if f not in record]
        if missing:
            raise SampleError(f"{where}: sample lacks {', '.join(missing)}: {line.strip()[:80]!r}")
        for field in FIELDS[:3]:
            if not isinstance(record[field], str) or not record[field]:
                raise SampleError(f"{where}: {field} must be a non-empty string, got {record[field]!r}")
        value = record["value"]
        # bool is an int in Python; true/false is not a measurement.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SampleError(f"{where}: value must be a finite number, got {value!r}")
        samples.setdefault((record["bench"], record["subject"], record["metric"]), []).append(float(value))
    return samples


def read_files(paths: Sequence[str]) -> Samples:
    """read_samples over several files ("-" or no paths: stdin), merged in order."""
    merged: Samples = {}
    for path in paths or ["-"]:
        if path == "-":
            part = read_samples(sys.stdin, "<stdin>")
        else:
            with open(path, encoding="utf-8") as f:
                part = read_samples(f, path)
        for key, values in part.items():
            merged.setdefault(key, []).extend(values)
    return merged


def _sorted_nonempty(xs: Iterable[float]) -> List[float]:
    s = sorted(xs)
    if not s:
        raise ValueError("no samples")
    return s


def percentile(xs: Iterable[float], p: float) -> float:
    """Nearest-rank percentile: sorted(xs)[ceil(p / 100 * n) - 1]; p = 0 is the minimum."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    s = _sorted_nonempty(xs)
    # Rounded before the ceiling so that float error cannot move a whole rank: 99.9 % of 1000 samples is
    # rank 999, even where p * n comes out a hair above 99900.
    rank = math.ceil(round(p * len(s) / 100, 9))
    return s[max(rank, 1) - 1]


def median(xs: Iterable[float]) -> float:
    """percentile(xs, 50): the lower middle sample for an even count."""
    return percentile(xs, 50)


def mean(xs: Iterable[float]) -> float:
    s = _sorted_nonempty(xs)
    return math.fsum(s) / len(s)


def stat(xs: Sequence[float], name: str) -> float:
    """One named statistic: n, min, max, mean, median or pNN (a percentile, e.g. p95, p99.9)."""
    if name == "n":
        return float(len(xs))
    if name == "min":
        return percentile(xs, 0)
    if name == "max":
        return percentile(xs, 100)
    if name == "mean":
        return mean(xs)
    if name == "median":
        return median(xs)
    if name.startswith("p"):
        try:
            p = float(name[1:])
        except ValueError:
            p = -1.0
        if 0 <= p <= 100:
            return percentile(xs, p)
    raise ValueError(f"unknown statistic {name!r} (n, min, max, mean, median, pNN)")


def summary(xs: Sequence[float], percentiles: Sequence[float] = (50, 95, 99)) -> Dict[str, float]:
    """n, min, the given percentiles (keys p50, p95, ...), max and mean."""
    out: Dict[str, float] = {"n": len(xs), "min": percentile(xs, 0)}
    for p in percentiles:
        out[f"p{p:g}"] = percentile(xs, p)
    out["max"] = percentile(xs, 100)
    out["mean"] = mean(xs)
    return out


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; cells are printed with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row of {len(row)} cells under a header of {len(header)}: {row!r}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def ratio_line(label: str, numerator: float, denominator: float, target: Optional[float] = None,
               at_most: bool = True) -> str:
    """`label = R.RRx`, and when a target is given whether it is met (R <= target, or >= when at_most is False)."""
    r = numerator / denominator
    line = f"{label} = {r:.2f}x"
    if target is not None:
        met = r <= target if at_most else r >= target
        line += f" (target {'<=' if at_most else '>='} {target:g}x: {'met' if met else 'NOT met'})"
    return line


def _fmt(x: float, name: str, digits: int, values: Sequence[float] = ()) -> str:
    """A count (n, or any statistic of samples that are all whole numbers) without decimals."""
    whole = name == "n" or (values and all(float(v).is_integer() for v in values))
    return str(int(x)) if whole else f"{x:.{digits}f}"


def _parse_columns(spec: str) -> List[Tuple[str, str, str]]:
    columns = []
    for part in spec.split(","):
        bits = part.split(":")
        if len(bits) not in (2, 3) or not all(bits[:2]):
            raise ValueError(f"column {part!r} is not METRIC:STAT[:LABEL]")
        stat([1.0], bits[1])  # an unknown statistic fails here, before any output
        columns.append((bits[0], bits[1], bits[2] if len(bits) == 3 else f"{bits[0]} {bits[1]}"))
    return columns


def table(samples: Samples, columns: Optional[str] = None, digits: int = 2) -> str:
    """The `table` command's output for already read samples."""
    if not samples:
        raise ValueError("no samples")
    if columns is None:
        rows = [[b, s, m, len(v)] + [_fmt(summary(v)[k], k, digits, v) for k in ("p50", "p95", "p99", "min", "max")]
                for (b, s, m), v in samples.items()]
        return markdown_table(["bench", "subject", "metric", "n", "p50", "p95", "p99", "min", "max"], rows)
    cols = _parse_columns(columns)
    known_metrics = {m for (_, _, m) in samples}
    for metric, _, _ in cols:
        if metric not in known_metrics:
            raise ValueError(f"no samples of metric {metric!r} (have: {', '.join(sorted(known_metrics))})")
    subjects = list(dict.fromkeys((b, s) for (b, s, _) in samples))
    rows = []
    for b, s in subjects:
        cells = []
        for metric, name, _ in cols:
            values = samples.get((b, s, metric))
            cells.append(_fmt(stat(values, name), name, digits, values) if values else "–")
        rows.append([s] + cells)
    return markdown_table(["subject"] + [label for _, _, label in cols], rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("table", "summary"):
        p = sub.add_parser(name)
        p.add_argument("files", nargs="*")
        p.add_argument("--bench", help="only samples of this bench")
        if name == "table":
            p.add_argument("--columns", help="METRIC:STAT[:LABEL],... (one row per subject)")
            p.add_argument("--digits", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        samples = read_files(args.files)
        if args.bench:
            samples = {k: v for k, v in samples.items() if k[0] == args.bench}
        if args.command == "table":
            print(table(samples, args.columns, args.digits))
        else:
            print(json.dumps({"/".join(k): summary(v) for k, v in samples.items()}, indent=1))
    except (SampleError, ValueError, OSError) as e:
        print(f"benchstats: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
