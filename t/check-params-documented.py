#!/usr/bin/env python3
"""check-params-documented.py: every parameter in lib/mail/params.def has a
section ("### name") in doc/parameters.md, and every section names a
parameter that exists. TAP output; run by make check (E2E_TESTS)."""
import os
import re
import sys

SRCDIR = os.environ.get("PETREL_SRCDIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PARAMS = os.path.join(SRCDIR, "lib", "mail", "params.def")
DOC = os.path.join(SRCDIR, "doc", "parameters.md")


def table_names(path):
    """Names of the PARAM(...) rows, in file order."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*PARAM\(\s*([A-Za-z0-9_]+)\s*,", line)
            if m:
                names.append(m.group(1))
    return names


def documented_names(path):
    """Names of the "### name" sections."""
    with open(path, encoding="utf-8") as f:
        return [m.group(1) for m in re.finditer(r"^### ([A-Za-z0-9_]+)\s*$", f.read(), re.M)]


def main():
    results = []
    table = table_names(PARAMS)
    documented = documented_names(DOC)
    results.append((len(table) > 0, "params.def has PARAM rows (%d)" % len(table)))
    results.append((len(set(table)) == len(table), "params.def names are unique"))
    missing = [n for n in table if n not in set(documented)]
    for name in missing:
        print("# not documented in doc/parameters.md: %s" % name)
    results.append((not missing, "every parameter is documented in doc/parameters.md"))
    stale = [n for n in documented if n not in set(table)]
    for name in stale:
        print("# documented but not in params.def: %s" % name)
    results.append((not stale, "every documented parameter exists in params.def"))
    results.append((len(set(documented)) == len(documented), "no parameter is documented twice"))
    failed = 0
    for i, (ok, text) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, text))
        failed += not ok
    print("1..%d" % len(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
