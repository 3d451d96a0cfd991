"""Fuzzing: every op on random, degenerate and wrong inputs, in a child process.

fuzz_worker.py runs the hypothesis cases; a segfault or abort there kills only
the child, and the test reports the case the child was running. The number of
examples per op is ``VT_FUZZ_EXAMPLES`` (default 100).
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

WORKER = Path(__file__).with_name("fuzz_worker.py")
DEFAULT_EXAMPLES = 100


def run_worker(command: list[str], case_file: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a fuzz child; fail naming the last case when it dies of a signal."""
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    output = proc.stdout + proc.stderr
    if proc.returncode < 0:
        case = case_file.read_text() if case_file.exists() else "(none recorded)"
        name = signal.Signals(-proc.returncode).name
        pytest.fail(f"the interpreter died of {name} in case:\n{case}\n{output[-4000:]}")
    return proc.returncode, output


def test_every_op_survives_fuzzing(tmp_path):
    examples = int(os.environ.get("VT_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
    env = dict(os.environ, VT_FUZZ_EXAMPLES=str(examples), PYTHONHASHSEED="0")
    case_file = tmp_path / "case.txt"
    rc, output = run_worker([sys.executable, str(WORKER), str(case_file)], case_file, env)
    assert rc == 0, output[-20000:]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^FUZZ (\w+) (\d+) ", output, re.M)}
    total = int(re.search(r"^FUZZ_TOTAL (\d+)$", output, re.M)[1])
    print(f"fuzz cases: {total} ({examples} examples per op over {len(counts)} ops)")
    assert "FUZZ_UNCOVERED" not in output
    assert len(counts) >= 18 and total == sum(counts.values())
    assert all(n >= examples for n in counts.values()), counts


def test_a_crash_is_reported_with_its_case(tmp_path):
    case_file = tmp_path / "case.txt"
    crash = f"open({str(case_file)!r}, 'w').write('nms(boxes=...)'); import os; os.abort()"
    with pytest.raises(pytest.fail.Exception, match=r"SIGABRT in case:\nnms\(boxes=\.\.\.\)"):
        run_worker([sys.executable, "-c", crash], case_file, dict(os.environ))
