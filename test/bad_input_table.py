"""Prints docs/bad-input.md's table from test/expected/bad_input.out, so
the documentation is exactly what the regression test checks.
usage: python3 test/bad_input_table.py > /tmp/table.md"""
import os
import re

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected", "bad_input.out")
lines = open(path, encoding="utf-8").read().splitlines()
start = lines.index("SELECT fn, input, outcome(q, as_role) FROM cases ORDER BY id;") + 3
print("| function | input | result |")
print("|---|---|---|")
for line in lines[start:]:
    if re.match(r"^\(\d+ rows\)$", line):
        break
    fn, inp, out = (c.strip() for c in line.split("|", 2))
    out = out.replace("|", "\\|")
    print(f"| `{fn}` | {inp} | {out} |")
