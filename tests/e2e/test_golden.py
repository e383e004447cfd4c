#!/usr/bin/env python3
"""Golden tests: every fixtures/**/<case>.eml with a <case>.json beside it is run
through `inboxd parse`, and the keys present in <case>.json must equal the output's.

A family's expected file may hold only the keys it is about (fixtures/classify/ checks
"classification", "bounce", ...); fixtures/mail/ files hold every key the MIME parser
fills. Nested values are compared whole.

INBOXD_UPDATE_GOLDEN=1 rewrites the expected files from the current output (keeping
each file's key set; a missing file gets every key). Review the diff before committing:
an expected file is a claim about what is right, not a recording.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(os.environ.get("INBOXD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("INBOXD_BIN", str(SRC / "build" / "inboxd"))
UPDATE = os.environ.get("INBOXD_UPDATE_GOLDEN") == "1"


def parse(path):
    out = subprocess.run([BIN, "parse", str(path)], capture_output=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"inboxd parse {path} exited {out.returncode}: {out.stderr!r}")
    lines = out.stdout.decode("utf-8").splitlines()
    if len(lines) != 1:
        raise AssertionError(f"inboxd parse {path}: want 1 line, got {len(lines)}")
    return json.loads(lines[0])


def main():
    cases = sorted(p for p in (SRC / "fixtures").rglob("*.eml") if p.with_suffix(".json").exists()
                   or UPDATE)
    failures = 0
    for eml in cases:
        want_path = eml.with_suffix(".json")
        got = parse(eml)
        if UPDATE:
            keys = json.loads(want_path.read_text()).keys() if want_path.exists() else got.keys()
            want_path.write_text(json.dumps({k: got.get(k) for k in keys}, ensure_ascii=False,
                                            indent=2) + "\n")
            continue
        want = json.loads(want_path.read_text())
        for key, value in want.items():
            if got.get(key, "<missing>") != value:
                failures += 1
                print(f"FAIL {eml.relative_to(SRC)}: {key}\n  got:  "
                      f"{json.dumps(got.get(key, '<missing>'), ensure_ascii=False)}\n  want: "
                      f"{json.dumps(value, ensure_ascii=False)}")
    print(f"{len(cases)} golden cases, {failures} mismatched fields")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
