"""Write the starter question sets into prorl_eval/tasks/starter_data/ (run once).

Three small sets the embedded SmolLM2-135M-Instruct partly knows (the `starter:` tasks, used by the
README's first command and the `prorl-mini` recipe), each split into a training file and a
held-out evaluation file with no question in common (a seeded shuffle, so re-running this script
writes the same files):

- capitals: "What is the capital city of <country>?" (60 countries; 16 held out);
- sums: "What is <a> + <b>?" for a, b in 0..19 (400 questions; 16 held out);
- products: "What is <a> times <b>?" for a, b in 2..12 (121 questions; 16 held out).

    .venv/bin/python scripts/make_starter_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "prorl_eval" / "tasks" / "starter_data"
HELD_OUT = 16
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin", "Spain": "Madrid",
    "Canada": "Ottawa", "Egypt": "Cairo", "Russia": "Moscow", "China": "Beijing",
    "India": "New Delhi", "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Poland": "Warsaw", "Austria": "Vienna", "Hungary": "Budapest", "Turkey": "Ankara",
    "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Argentina": "Buenos Aires",
    "Mexico": "Mexico City", "Cuba": "Havana", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "South Korea": "Seoul", "Australia": "Canberra", "Brazil": "Brasilia", "Belgium": "Brussels",
    "Netherlands": "Amsterdam", "Switzerland": "Bern", "Iran": "Tehran", "Iraq": "Baghdad",
    "Saudi Arabia": "Riyadh", "Pakistan": "Islamabad", "Indonesia": "Jakarta",
    "Philippines": "Manila", "Nigeria": "Abuja", "Ethiopia": "Addis Ababa", "Morocco": "Rabat",
    "Colombia": "Bogota", "Venezuela": "Caracas", "Czech Republic": "Prague",
    "Romania": "Bucharest", "Ukraine": "Kyiv", "New Zealand": "Wellington",
    "Iceland": "Reykjavik", "Scotland": "Edinburgh", "Wales": "Cardiff", "Syria": "Damascus",
    "Lebanon": "Beirut", "Nepal": "Kathmandu", "Bangladesh": "Dhaka", "Malaysia": "Kuala Lumpur",
    "Jamaica": "Kingston", "Bulgaria": "Sofia",
}  # fmt: skip


def question_sets() -> dict[str, list[dict[str, str]]]:
    capitals = [
        {"id": f"capital-{c.lower().replace(' ', '-')}", "question": f"What is the capital city of "
         f"{c}?", "answer": a}
        for c, a in CAPITALS.items()
    ]  # fmt: skip
    sums = [
        {"id": f"sum-{a}-{b}", "question": f"What is {a} + {b}?", "answer": str(a + b)}
        for a in range(20)
        for b in range(20)
    ]
    products = [
        {"id": f"product-{a}-{b}", "question": f"What is {a} times {b}?", "answer": str(a * b)}
        for a in range(2, 13)
        for b in range(2, 13)
    ]
    return {"capitals": capitals, "sums": sums, "products": products}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in question_sets().items():
        shuffled = list(rows)
        random.Random(f"prorl-mini {name}").shuffle(shuffled)  # str seeds hash with SHA-512
        parts = {"eval": shuffled[:HELD_OUT], "train": shuffled[HELD_OUT:]}
        for part, chosen in parts.items():
            path = OUT / f"{name}_{part}.jsonl"
            lines = [json.dumps(row) for row in sorted(chosen, key=lambda r: r["id"])]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            print(f"{path.relative_to(OUT.parents[2])}: {len(chosen)} questions")


if __name__ == "__main__":
    main()
