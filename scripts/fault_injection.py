"""Kill the long commands at random moments with SIGKILL, run them again, and check that nothing is lost.

Each round runs the chain of the ``ci`` preset in a fresh work folder:

    twin build -> train -> train-generators -> benchmark

For every command it starts the command, kills it with SIGKILL after a random delay (uniform between
0.2 s and the command's measured duration, so kills land anywhere, including before the first file is
written and while checkpoints are being saved), then runs the identical command again and requires it
to finish with exit code 0. (A command that finished before its kill is not run again: a finished
twin is, rightly, not rebuilt without ``--overwrite``.) After each rerun it checks the outputs of every earlier step again
(the dataset still opens with the same images, the run and the generators still load with the same
checksums, the benchmark's results exist), so a kill of a later step that damaged an earlier output
counts as a loss.

Usage (from the repository root, with the README's venv)::

    .venv/bin/python scripts/fault_injection.py --rounds 5 --work /tmp/fault-injection

Prints one line per kill and rerun and a summary; exits 1 at the first failure, with the command's
output tail.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = [sys.executable, "-m", "brainit_core"]


def steps(work: Path) -> list[tuple[str, list[str]]]:
    data, run, gens, bench = work / "twin", work / "run", work / "generators", work / "benchmark"
    return [
        ("twin build", ["twin", "build", "--out", str(data), "--preset", "ci", "--seed", "0"]),
        ("train", ["train", "--data", str(data), "--preset", "ci", "--out", str(run), "--resume", "--threads", "1"]),
        ("train-generators", ["train-generators", "--data", str(data), "--preset", "ci", "--out", str(gens),
                              "--threads", "1"]),
        ("benchmark", ["benchmark", "--data", str(data), "--run", str(run), "--generators", str(gens),
                       "--out", str(bench), "--limit", "4", "--networks", "offline", "--threads", "1"]),
    ]


def fingerprints(work: Path, upto: int) -> dict:
    """What the finished steps produced, read back through the library (a damaged output raises)."""
    out = {}
    if upto >= 0:
        from brainit_core.data import load_dataset

        ds = load_dataset(work / "twin")
        ids = ds.image_ids[:16]
        out["twin"] = hashlib.sha256(ds.images(ids).tobytes()).hexdigest()[:16]
        out["twin_subjects"] = tuple(ds.subjects)
    if upto >= 1:
        from brainit_core.runs import RunDirectory

        out["run"] = RunDirectory(work / "run").sha256[:16]
    if upto >= 2:
        from brainit_core.reconstruction.generators import Generators

        out["generators"] = Generators.load(work / "generators", device="cpu").sha256[:16]
    if upto >= 3:
        from brainit_core.benchmark import load_results

        out["benchmark_methods"] = tuple(load_results(work / "benchmark")["methods"])
    return out


def run(argv: list[str], log: Path, kill_after: float | None = None) -> tuple[int, float]:
    """Run a command (killing it with SIGKILL after ``kill_after`` s if given); returns (rc, seconds)."""
    t0 = time.time()
    with open(log, "ab") as f:
        proc = subprocess.Popen(PY + argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, time.time() - t0


def tail(path: Path, n: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/brainit-fault-injection")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(args.work)
    os.environ.setdefault("BRAINIT_DATA", str(root / "home"))
    durations: dict[str, float] = {}
    kills = reruns = finished_early = 0
    for r in range(args.rounds):
        work = root / f"round{r}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log = work / "commands.log"
        for k, (name, argv) in enumerate(steps(work)):
            before = fingerprints(work, k - 1)
            reruns_before = reruns
            if name not in durations:  # measure once, uninterrupted, in a scratch copy of the inputs
                delay = None
            else:
                delay = rng.uniform(0.2, durations[name])
            if delay is not None:
                rc, sec = run(argv, log, kill_after=delay)
                if rc == 0:  # it finished before the kill: nothing to resume (a finished twin is not rebuilt)
                    print(f"round {r}: {name}: finished in {sec:.1f} s, before the kill at {delay:.1f} s", flush=True)
                    finished_early += 1
                else:
                    kills += 1
                    print(f"round {r}: {name}: killed after {delay:.1f} s (rc {rc})", flush=True)
            if delay is None or rc != 0:
                rc, sec = run(argv, log)
                reruns += 1
            if rc != 0:
                print(f"round {r}: {name}: rerun FAILED (rc {rc}); last output:\n{tail(log)}")
                return 1
            durations.setdefault(name, sec)
            after = fingerprints(work, k)
            lost = [key for key in before if before[key] != after.get(key)]
            if lost:
                print(f"round {r}: {name}: earlier outputs changed: {lost}")
                return 1
            done = "ran uninterrupted" if delay is None else ("rerun finished" if reruns_before < reruns else "kept")
            print(f"round {r}: {name}: {done} ({sec:.1f} s), earlier outputs intact", flush=True)
    print(f"{args.rounds} rounds, {kills} kills ({finished_early} more commands finished before their kill), "
          f"{reruns} reruns: every rerun finished and nothing was lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
