"""Unit tests of benchstats: small sample sets against values computed by hand (run by test-stats.sh)."""

import io
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchstats as bs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def lines(*records):
    return [json.dumps(r) for r in records]


class Percentiles(unittest.TestCase):
    # 1..10 in scrambled order: nearest rank of p is ceil(p / 10) for these ten.
    TEN = [7, 3, 10, 1, 9, 2, 8, 5, 4, 6]

    def test_nearest_rank_on_ten_samples(self):
        # p50: ceil(5.0) = rank 5 -> 5; p95: ceil(9.5) = rank 10 -> 10; p90: rank 9 -> 9; p11: ceil(1.1) = 2.
        self.assertEqual(bs.percentile(self.TEN, 50), 5)
        self.assertEqual(bs.percentile(self.TEN, 90), 9)
        self.assertEqual(bs.percentile(self.TEN, 95), 10)
        self.assertEqual(bs.percentile(self.TEN, 11), 2)
        self.assertEqual(bs.percentile(self.TEN, 10), 1)
        self.assertEqual(bs.percentile(self.TEN, 0), 1)
        self.assertEqual(bs.percentile(self.TEN, 100), 10)

    def test_median_of_an_even_count_is_the_lower_middle_not_an_average(self):
        self.assertEqual(bs.median([4.0, 1.0, 3.0, 2.0]), 2.0)  # statistics.median would say 2.5
        self.assertEqual(bs.median([2.0, 1.0, 3.0]), 2.0)
        self.assertEqual(bs.median([42.0]), 42.0)

    def test_a_rank_that_is_a_whole_number_is_not_rounded_up(self):
        twenty = list(range(1, 21))
        self.assertEqual(bs.percentile(twenty, 95), 19)  # 0.95 * 20 = 19 exactly: rank 19
        thousand = list(range(1, 1001))
        self.assertEqual(bs.percentile(thousand, 99.9), 999)
        self.assertEqual(bs.percentile(thousand, 99.95), 1000)

    def test_percentile_differs_from_the_old_definitions(self):
        # Before: sorted[round((n - 1) * p)] in akidb bench (Rust rounds 4.5 up: sample 6) and
        # sorted[floor(p * n)] in the edge bench (sample 6) for the p50 of 1..10; statistics.median 5.5.
        # Nearest rank says 5: this pins the one definition against the ones it replaced.
        self.assertEqual(bs.percentile(self.TEN, 50), 5)
        self.assertNotEqual(bs.percentile(self.TEN, 50), sorted(self.TEN)[int(0.5 * 10)])
        self.assertNotEqual(bs.median(self.TEN), 5.5)

    def test_summary_and_named_statistics(self):
        s = bs.summary([10, 30, 20, 40])
        self.assertEqual(s, {"n": 4, "min": 10, "p50": 20, "p95": 40, "p99": 40, "max": 40, "mean": 25.0})
        self.assertEqual(bs.stat([10, 30, 20, 40], "p75"), 30)
        self.assertEqual(bs.stat([10, 30, 20, 40], "median"), 20)
        self.assertEqual(bs.stat([10, 30, 20, 40], "n"), 4)
        for bad in ("p101", "pxx", "avg"):
            with self.assertRaises(ValueError, msg=bad):
                bs.stat([1.0], bad)

    def test_no_samples_and_bad_percentiles_are_errors(self):
        with self.assertRaisesRegex(ValueError, "no samples"):
            bs.median([])
        with self.assertRaisesRegex(ValueError, "outside 0..100"):
            bs.percentile([1.0], 101)


class Reading(unittest.TestCase):
    def test_samples_are_grouped_in_input_order(self):
        got = bs.read_samples(lines(
            {"bench": "serve", "subject": "c1", "metric": "latency_ms", "value": 3},
            {"bench": "serve", "subject": "c8", "metric": "latency_ms", "value": 9.5},
            {"bench": "serve", "subject": "c1", "metric": "latency_ms", "value": 1},
        ) + ["", "   "])
        self.assertEqual(list(got), [("serve", "c1", "latency_ms"), ("serve", "c8", "latency_ms")])
        self.assertEqual(got[("serve", "c1", "latency_ms")], [3.0, 1.0])

    def test_sample_line_round_trips(self):
        got = bs.read_samples([bs.sample_line("core", "akidb int8", "single_ms", 4.25)])
        self.assertEqual(got, {("core", "akidb int8", "single_ms"): [4.25]})

    def test_malformed_lines_are_named(self):
        cases = [
            ("{oops", "x.jsonl:1: not JSON"),
            ("[1, 2]", "x.jsonl:1: a sample is a JSON object"),
            ('{"bench": "b", "subject": "s", "value": 1}', "x.jsonl:1: sample lacks metric"),
            ('{"bench": "b", "subject": "", "metric": "m", "value": 1}', "subject must be a non-empty string"),
            ('{"bench": "b", "subject": "s", "metric": "m", "value": "12"}', "value must be a finite number"),
            ('{"bench": "b", "subject": "s", "metric": "m", "value": true}', "value must be a finite number"),
            ('{"bench": "b", "subject": "s", "metric": "m", "value": NaN}', "value must be a finite number"),
        ]
        for line, message in cases:
            with self.assertRaises(bs.SampleError, msg=line) as caught:
                bs.read_samples([line], "x.jsonl")
            self.assertIn(message, str(caught.exception))
        with self.assertRaisesRegex(bs.SampleError, "x.jsonl:3: not JSON"):
            bs.read_samples([lines({"bench": "b", "subject": "s", "metric": "m", "value": 1})[0], "", "{"], "x.jsonl")


class Printing(unittest.TestCase):
    SAMPLES = {
        ("serve", "c1", "qps"): [101.24],
        ("serve", "c1", "latency_ms"): [4.0, 2.0, 3.0, 1.0],
        ("serve", "c8", "latency_ms"): [8.0, 6.5],
        ("serve", "c8", "non2xx"): [3],
    }

    def test_column_table(self):
        out = bs.table(self.SAMPLES, "qps:median:QPS,latency_ms:p50:p50 ms,latency_ms:max:max ms,latency_ms:n,"
                                     "non2xx:max:non-2xx")
        # Counts (n, and samples that are all whole numbers) print without decimals.
        self.assertEqual(out.splitlines(), [
            "| subject | QPS | p50 ms | max ms | latency_ms n | non-2xx |",
            "|---|---|---|---|---|---|",
            "| c1 | 101.24 | 2 | 4 | 4 | – |",
            "| c8 | – | 6.50 | 8.00 | 2 | 3 |",
        ])

    def test_default_table(self):
        out = bs.table({("b", "s", "m"): [1.5, 2.0, 3.0]}, digits=1)
        self.assertEqual(out.splitlines()[2], "| b | s | m | 3 | 2.0 | 3.0 | 3.0 | 1.5 | 3.0 |")

    def test_bad_columns_are_refused(self):
        with self.assertRaisesRegex(ValueError, "no samples of metric 'rps'"):
            bs.table(self.SAMPLES, "rps:p50")
        with self.assertRaisesRegex(ValueError, "unknown statistic"):
            bs.table(self.SAMPLES, "qps:p500")
        with self.assertRaisesRegex(ValueError, "METRIC:STAT"):
            bs.table(self.SAMPLES, "qps")

    def test_ratio_line(self):
        self.assertEqual(bs.ratio_line("a/b", 3.0, 2.0), "a/b = 1.50x")
        self.assertEqual(bs.ratio_line("a/b", 3.0, 2.0, 1.2), "a/b = 1.50x (target <= 1.2x: NOT met)")
        self.assertEqual(bs.ratio_line("a/b", 3.0, 2.0, 1.2, at_most=False), "a/b = 1.50x (target >= 1.2x: met)")

    def test_markdown_table_checks_row_width(self):
        with self.assertRaisesRegex(ValueError, "row of 1 cells under a header of 2"):
            bs.markdown_table(["a", "b"], [["x"]])


class CommandLine(unittest.TestCase):
    def run_cli(self, args, stdin):
        return subprocess.run([sys.executable, os.path.join(HERE, "benchstats.py")] + args, input=stdin,
                              capture_output=True, text=True, check=False)

    def test_summary_from_stdin(self):
        stdin = "\n".join(lines(*({"bench": "b", "subject": "s", "metric": "ms", "value": v} for v in (5, 1, 4, 2, 3))))
        r = self.run_cli(["summary"], stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["b/s/ms"], {"n": 5, "min": 1.0, "p50": 3.0, "p95": 5.0, "p99": 5.0,
                                                          "max": 5.0, "mean": 3.0})

    def test_a_bad_line_exits_2_naming_it(self):
        r = self.run_cli(["table"], '{"bench": "b", "subject": "s", "metric": "ms", "value": 1}\nnot json\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn("<stdin>:2: not JSON", r.stderr)
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
