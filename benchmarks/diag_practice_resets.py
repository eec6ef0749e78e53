"""Why did practice ask for help? For each reset of a practice store, what the judge and the sim's truth saw on the
attempts before it: a "stuck" reset whose window holds an attempt where the truth saw the attempted goal or the start
(the reverse task's goal) was called by the judge's mistake, not by the scene.

    python benchmarks/diag_practice_resets.py data/demo/<run>/store.zarr [--window 4]

Reads only the episode metadata the practice session writes (phase, success, true_success, interventions, notes).
"judge" is the judge's verdict as recorded (TrajectoryStore.recorded_meta); a label a person corrected since, at a
review, is shown after it ("judge - (corrected S)").
"""
import argparse
import json
from collections import Counter

from robot_stack.store import TrajectoryStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--window", type=int, default=4, help="practice.stuck_attempts of the run")
    args = ap.parse_args()
    with TrajectoryStore.open(args.store, mode="r") as s:
        eps = s.episodes(source="practice")
        metas = [s.recorded_meta(i) for i in eps]                # what the judge said when practice decided
        corrected = {m.attempt: s.episode_meta(i).success for i, m in zip(eps, metas, strict=True)
                     if s.episode_meta(i).success != m.success}
    kinds: Counter = Counter()
    judge_made = 0
    for k, m in enumerate(metas):
        for r in (json.loads(m.notes).get("resets", []) if m.notes else []):
            kinds[r["kind"]] += 1
            if r["kind"] != "stuck":
                continue
            window = metas[max(0, k - args.window):k]
            # truth_start: the reverse goal held at the attempt's end; only the attempted task's truth is recorded,
            # so "start seen" is the truth of the attempted goal for the other direction's attempts in the window.
            seen = [w for w in window if w.true_success]
            judge_made += bool(seen)
            print(f"stuck before attempt {m.attempt}: " + ", ".join(
                f"{w.attempt} {w.phase[0]} judge {'S' if w.success else '-'}"
                + (f" (corrected {'S' if corrected[w.attempt] else '-'})" if w.attempt in corrected else "")
                + f" truth {'S' if w.true_success else '-'}"
                for w in window))
    print(f"resets by kind: {dict(kinds)}; stuck resets whose window the truth saw a goal in: {judge_made} of "
          f"{kinds['stuck']}; attempts: {len(metas)}; labels corrected by a review: {len(corrected)}")


if __name__ == "__main__":
    main()
