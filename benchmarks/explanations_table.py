"""How the explanations of a benchmark run's fixes fared (docs/explanations.md): of the fixes, how
many carry the evidence and a check; of the root causes, how many name the changed expression and
contradict nothing; of the model's answers (first and last), how many named code found nowhere,
echoed the prompt or contradicted the traces. Then one row per fix.

Usage: .venv/bin/python benchmarks/explanations_table.py benchmarks/results/RUN
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from repair_agent.bench.summary import RECORDS_FILE, is_fixed, load_records


def kinds(problems: list[str]) -> list[str]:
    """A problem's kind, from the words check_explanation writes."""
    out = []
    for p in problems:
        out.append("alien name" if "exists in neither" in p else "echo" if "repeated the prompt" in p else
                   "no root cause" if "no root cause" in p else
                   "change not named" if "does not name the changed code" in p else "contradiction")
    return sorted(set(out))


def main() -> None:
    run = Path(sys.argv[1])
    fixes = [r for r in load_records(run / RECORDS_FILE) if is_fixed(r)]
    explained = [r for r in fixes if (r.get("explanation") or {}).get("check")]
    kept = [r for r in explained if not r["explanation"]["replaced"]]
    first, last = Counter(), Counter()
    for r in explained:
        answers = r["explanation"]["problems"]
        first.update(kinds(answers[0]))
        last.update(kinds(answers[-1]))
    clean = [r for r in explained if r["explanation"]["names_change"] and
             (r["explanation"]["replaced"] or r["explanation"]["check"]["contradicted"] == 0)]
    print(f"fixes: {len(fixes)}; with evidence: {sum(1 for r in fixes if (r.get('evidence') or {}).get('text'))}; "
          f"with a faithfulness result: {sum(1 for r in fixes if r.get('faithfulness') is not None)}")
    print(f"root causes naming the changed expression and contradicting nothing: {len(clean)} of {len(explained)} "
          f"({len(kept)} the model's words, kept; {len(explained) - len(kept)} written from the evidence)")
    print(f"the model's words kept that name the changed expression: "
          f"{sum(1 for r in kept if r['explanation']['names_change'])} of {len(kept)}")
    print(f"answers asked again: {sum(1 for r in explained if r['explanation']['attempts'] == 2)}")
    print(f"first answers' problems: {dict(first)}; last answers' problems: {dict(last)}")
    print("\n| task | root cause | answers | first answer's problems | names the change |\n|---|---|---|---|---|")
    for r in explained:
        e = r["explanation"]
        print(f"| {r['task_id']} | {'evidence' if e['replaced'] else 'model'} | {e['attempts']} | "
              f"{', '.join(kinds(e['problems'][0])) or '-'} | {'yes' if e['names_change'] else 'no'} |")


if __name__ == "__main__":
    main()
