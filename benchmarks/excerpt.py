"""How often cutting a passage to its best sentences keeps the answer, per character budget.

    python benchmarks/excerpt.py --data ../shared/data/squad-dev-v1.1.json [--budgets 300 400 600] [--json]

For SQuAD dev questions (evaluation only: nothing is tuned on this), the gold paragraph is
cut by `excerpt.narrow` and by plain truncation to the same length; a question counts as kept
when one of its gold answers is still in the text. The prompt's default budget (400) was set
by the first-token target in benchmarks/answer.py; this says what it costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.generate.excerpt import narrow
from rag.retrieve import Hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="SQuAD v1.1 JSON")
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 350, 400, 500, 600])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = [(p["context"], qa["question"], [a["text"] for a in qa["answers"]])
             for article in json.loads(args.data.read_text())["data"] for p in article["paragraphs"]
             for qa in p["qas"]]
    rows = []
    for budget in args.budgets:
        kept = truncated = 0
        for context, question, answers in items:
            text = narrow(question, Hit(1, 0, "", None, 0, len(context), 0.0, "", context), budget).text
            kept += any(a in text for a in answers)
            truncated += any(a in context[:budget] for a in answers)
        rows.append({"chars": budget, "answer_kept": round(kept / len(items), 3),
                     "first_chars_kept": round(truncated / len(items), 3)})
    if args.json:
        print(json.dumps({"questions": len(items), "rows": rows}, indent=1))
        return
    print(f"{len(items)} questions\n| chars | best sentences keep the answer | first chars keep it |")
    print("| ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['chars']} | {r['answer_kept']:.3f} | {r['first_chars_kept']:.3f} |")


if __name__ == "__main__":
    main()
