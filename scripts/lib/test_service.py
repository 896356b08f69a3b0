"""Tests of scripts/lib/service.sh (free_port, wait_ready) against real processes on loopback; run by
test-stats.sh beside the benchstats tests."""

import os
import socket
import subprocess
import tempfile
import time
import unittest

SERVICE_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.sh")
MOTO_SERVER = os.environ.get("MOTO_SERVER") or os.path.join(
    os.path.dirname(SERVICE_SH), "..", "..", "target", "tools", "moto-venv", "bin", "moto_server")


def bash(script, *args, timeout=30):
    """Runs `script` in bash with service.sh sourced; returns the CompletedProcess."""
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{SERVICE_SH}"; {script}', "bash", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


class FreePort(unittest.TestCase):
    def test_the_port_is_free_and_bindable(self):
        r = bash("free_port")
        self.assertEqual(r.returncode, 0, r.stderr)
        port = int(r.stdout)
        self.assertTrue(1024 <= port <= 65535, port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


class WaitReady(unittest.TestCase):
    """The service is started by the same bash that waits for it, as in the scripts (bash reaps it, so an
    exited service is gone, not a zombie that still answers `kill -0`)."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def wait_for(self, service, url, secs):
        log = os.path.join(self.dir.name, "service.log")
        # The service's pid is printed first, so the test can end it whatever happens.
        script = (f'bash -c "$1" >"$2" 2>&1 & pid=$!; trap "kill $pid 2>/dev/null || true" EXIT; '
                  f'wait_ready "$3" {secs} "$pid" "$2"')
        return bash(script, service, log, url, timeout=secs + 30)

    def free_port(self):
        return int(bash("free_port").stdout)

    def test_a_service_that_comes_up_late_is_waited_for(self):
        port = self.free_port()
        # Listens only after a second, as a service loading its model does.
        started = time.monotonic()
        r = self.wait_for(f"echo loading; sleep 1; exec python3 -m http.server {port} --bind 127.0.0.1",
                          f"http://127.0.0.1:{port}/", 20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(time.monotonic() - started, 0.9)

    def test_a_service_that_exits_fails_at_once_with_its_log(self):
        port = self.free_port()
        started = time.monotonic()
        r = self.wait_for("echo 'error: address already in use' >&2; sleep 0.3; exit 3",
                          f"http://127.0.0.1:{port}/readyz", 20)
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - started, 10, "waited for the timeout instead of noticing the exit")
        self.assertIn("error: address already in use", r.stderr)
        self.assertRegex(r.stderr, rf"process \d+ exited before http://127.0.0.1:{port}/readyz was ready")

    def test_without_a_log_the_reason_is_still_printed(self):
        """The demo's services write to the terminal: no LOG argument, the reason line alone."""
        port = self.free_port()
        r = bash('bash -c "exit 3" & pid=$!; wait_ready "$1" 20 "$pid"', f"http://127.0.0.1:{port}/readyz")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, rf"process \d+ exited before http://127.0.0.1:{port}/readyz was ready "
                                   r"\(its output is above\)")

    def test_a_service_that_never_answers_times_out_with_its_log(self):
        port = self.free_port()
        r = self.wait_for("echo still loading; exec sleep 60", f"http://127.0.0.1:{port}/readyz", 1)
        self.assertEqual(r.returncode, 1)
        self.assertIn("still loading", r.stderr)
        self.assertIn("not ready after 1 s", r.stderr)


class Services(unittest.TestCase):
    def test_stop_services_ends_every_service_started(self):
        with tempfile.TemporaryDirectory() as d:
            r = bash('start_service "$1/a.log" sleep 60; a=$service_pid; '
                     'start_service "$1/b.log" sleep 60; b=$service_pid; '
                     'kill -0 "$a" && kill -0 "$b" && echo started; stop_services; '
                     'for p in "$a" "$b"; do kill -0 "$p" 2>/dev/null && echo "$p still running"; done; echo stopped',
                     d, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["started", "stopped"], r.stdout)

    def test_a_service_started_in_a_subshell_is_not_recorded(self):
        """Why start_service must run in the script's own shell: the pid list of a $(...) is lost."""
        with tempfile.TemporaryDirectory() as d:
            r = bash('x=$(start_service "$1/a.log" sleep 60; echo "$service_pid"); '
                     'echo "${#service_pids[@]}"; kill "$x"', d, timeout=20)
        self.assertEqual(r.stdout.strip(), "0", r.stderr)


class StartMoto(unittest.TestCase):
    def test_moto_answers_and_holds_the_buckets(self):
        # Not a skip: test-stats.sh installs moto first, and a missing moto must fail, not pass quietly.
        self.assertTrue(os.access(MOTO_SERVER, os.X_OK),
                        f"{MOTO_SERVER} not installed (bash scripts/install-moto.sh)")
        with tempfile.TemporaryDirectory() as d:
            # The bucket listing (GET /) names both buckets; a bucket not asked for is absent (404).
            r = bash('trap stop_services EXIT; start_moto "$1" one two; curl -fsS "$moto_url/"; echo; '
                     'curl -s -o /dev/null -w "%{http_code}" -I "$moto_url/three"', d, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<Name>one</Name>", r.stdout)
        self.assertIn("<Name>two</Name>", r.stdout)
        self.assertTrue(r.stdout.endswith("\n404"), r.stdout)

    def test_a_missing_moto_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            env_script = 'MOTO_SERVER="$1/none" start_moto "$1" b'
            r = bash(env_script, d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("none missing: run scripts/install-moto.sh", r.stderr)


if __name__ == "__main__":
    unittest.main()
