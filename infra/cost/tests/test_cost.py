"""The cost model against hand-computed figures, the plan's lines, and bad input."""

import copy
import io
import json
import sys
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import akidb_cost as m  # noqa: E402

PRICES = m.load_json(m.PRICES)
PLAN = m.load_json(m.PLAN)


def plan_rows():
    return {r["line"]: r for r in m.compare_with_plan(m.compute(PLAN, PRICES), PLAN["plan_usd"])}


class PlanLines(unittest.TestCase):
    def test_lines_the_list_prices_support_are_reproduced(self):
        rows = plan_rows()
        for line in ["central_dc", "lambda_edge", "route53", "monitoring"]:
            self.assertFalse(rows[line]["flagged"], rows[line])
            self.assertLessEqual(abs(rows[line]["diff"]), 0.05 * rows[line]["plan"])

    def test_lambda_edge_by_hand(self):
        # 100 M x $0.60/M + 100 M x 0.036 s x 2 GB x $0.00005001
        self.assertAlmostEqual(m.compute(PLAN, PRICES)["lines"]["lambda_edge"], 60 + 360.072, places=3)

    def test_cloudfront_50_tb_is_flagged_with_its_list_price(self):
        # Free tier first (1,024 GB, 10 M requests), then 10,240 GB at $0.085 and the rest at $0.080.
        by_hand = 10240 * 0.085 + (51200 - 1024 - 10240) * 0.080 + (100e6 - 10e6) / 1e4 * 0.01
        row = plan_rows()["cloudfront"]
        self.assertAlmostEqual(row["model"], by_hand, places=2)
        self.assertTrue(row["flagged"])
        self.assertAlmostEqual(row["diff"], by_hand - 600, places=2)

    def test_lines_list_prices_contradict_are_flagged(self):
        rows = plan_rows()
        for line in ["cloudfront", "jetson", "s3", "total", "per_request"]:
            self.assertTrue(rows[line]["flagged"], line)
        # Jetson at list: 5 x $699 / 36 months + 5 x 25 W x 730 h x $0.13/kWh.
        self.assertAlmostEqual(rows["jetson"]["model"], 5 * 699 / 36 + 5 * 0.025 * 730 * 0.13, places=2)

    def test_total_is_the_sum_and_per_request_uses_the_qps(self):
        r = m.compute(PLAN, PRICES)
        self.assertAlmostEqual(r["total"], sum(r["lines"].values()), places=6)
        self.assertEqual(r["requests_per_month"], 550 * 730 * 3600)
        self.assertAlmostEqual(r["per_request"], r["total"] / (550 * 730 * 3600))


class Model(unittest.TestCase):
    def test_tiered(self):
        tiers = [[10, 1.0], [10, 0.5], [None, 0.1]]
        self.assertEqual(m.tiered(5, tiers), 5.0)
        self.assertEqual(m.tiered(15, tiers), 12.5)
        self.assertAlmostEqual(m.tiered(120, tiers), 10 + 5 + 10.0)

    def test_cdk_defaults_are_costed_from_default_json(self):
        cdk = m.load_json(m.CDK_DEFAULTS)
        s = m.scenario_from_cdk(cdk, PLAN)
        regions = [cdk["regions"]["primary"], *cdk["regions"]["secondary"]]
        self.assertEqual(sorted(s["central_dc"]["regions"]), sorted(regions))
        a, ms = cdk["services"]["akidbServe"], cdk["services"]["modelServer"]
        by_hand = 0.0
        for r in regions:
            vcpu = PRICES["prices"]["fargate_vcpu_hour"]["by_region"][r]
            gb = PRICES["prices"]["fargate_gb_hour"]["by_region"][r]
            by_hand += 730 * a["minTasks"] * (a["cpu"] / 1024 * vcpu + a["memoryMiB"] / 1024 * gb)
            by_hand += 730 * ms["minTasks"] * (ms["cpu"] / 1024 * vcpu + ms["memoryMiB"] / 1024 * gb)
            by_hand += 730 * (PRICES["prices"]["alb_hour"]["by_region"][r]
                              + 2 * PRICES["prices"]["alb_lcu_hour"]["by_region"][r])
        self.assertAlmostEqual(m.compute(s, PRICES)["lines"]["central_dc"], by_hand, places=6)
        self.assertEqual(s["lambda_edge"]["memory_mb"], cdk["lambdaEdge"]["memoryMiB"])

    def test_sensitivity_of_linear_inputs_equals_their_share(self):
        rows = {r["input"]: r for r in m.sensitivity(PLAN, PRICES)}
        lines = m.compute(PLAN, PRICES)["lines"]
        # Lambda@Edge is linear in invocations: doubling them adds the whole line once more.
        self.assertAlmostEqual(rows["Lambda@Edge invocations"]["delta"], lines["lambda_edge"], places=6)
        for r in rows.values():
            self.assertGreater(r["delta"], 0, r)

    def test_bad_input_names_the_field(self):
        cases = [
            (("lambda_edge", "invocations"), -1, "lambda_edge.invocations"),
            (("cloudfront", "egress_gb"), "50TB", "cloudfront.egress_gb"),
        ]
        for path, value, expect in cases:
            s = copy.deepcopy(PLAN)
            s[path[0]][path[1]] = value
            with self.assertRaisesRegex(m.InputError, expect.replace(".", r"\.")):
                m.compute(s, PRICES)
        s = copy.deepcopy(PLAN)
        s["central_dc"]["regions"]["mars-north-1"] = s["central_dc"]["regions"]["us-east-1"]
        with self.assertRaisesRegex(m.InputError, "mars-north-1"):
            m.compute(s, PRICES)
        s = copy.deepcopy(PLAN)
        del s["s3"]
        with self.assertRaisesRegex(m.InputError, "'s3'"):
            m.compute(s, PRICES)

    def test_cli_exit_codes(self):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            self.assertEqual(m.main(["--scenario", "/nonexistent.json"]), 1)
            self.assertEqual(m.main(["--json"]), 0)
        self.assertIn("no such file", err.getvalue())
        self.assertIn("lambda_edge", json.loads(out.getvalue())["lines"])

    def test_every_price_cites_a_source_and_date(self):
        for key, p in PRICES["prices"].items():
            self.assertTrue(p.get("source", "").startswith("https://"), key)
            self.assertRegex(p.get("date", ""), r"^\d{4}-\d{2}$", key)


class Readme(unittest.TestCase):
    def test_readme_shows_the_current_report_and_sources(self):
        readme = (m.HERE / "README.md").read_text()
        cdk = m.load_json(m.CDK_DEFAULTS)
        for name, text in [("report", m.report(PRICES, PLAN, cdk)), ("sources", m.render_sources(PRICES))]:
            begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
            self.assertIn(begin, readme)
            shown = readme.split(begin, 1)[1].split(end, 1)[0]
            self.assertEqual(shown.strip(), text.strip(), f"README's {name} is stale: run tests/update-readme.sh")


if __name__ == "__main__":
    unittest.main()
