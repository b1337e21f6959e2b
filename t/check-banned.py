#!/usr/bin/env python3
"""check-banned.py: the house rule that no C file calls strcpy, strcat,
sprintf, vsprintf, gets or strncpy (use struct str, str_copy, str_format or
snprintf with the result checked). One TAP line per rule."""

import os
import re
import sys

SRC = os.environ.get("PETREL_SRCDIR", os.path.join(os.path.dirname(__file__), ".."))
BANNED = ["strcpy", "strcat", "sprintf", "vsprintf", "gets", "strncpy"]
SKIP_DIRS = {"build", "build-check", ".git", "autom4te.cache", "run"}


def c_files():
    for root, dirs, files in os.walk(SRC):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("_")]
        for f in files:
            if f.endswith((".c", ".h")):
                yield os.path.join(root, f)


def strip_comments_and_strings(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def main():
    files = {p: strip_comments_and_strings(open(p, errors="replace").read()) for p in c_files()}
    failed = 0
    for n, name in enumerate(BANNED, 1):
        pat = re.compile(r"(?<![\w.>])%s\s*\(" % name)
        hits = [os.path.relpath(p, SRC) for p, t in files.items() if pat.search(t)]
        if hits:
            failed += 1
            print("not ok %d - no %s()" % (n, name))
            for h in hits:
                print("# " + h)
        else:
            print("ok %d - no %s() in %d files" % (n, name, len(files)))
    print("1..%d" % len(BANNED))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
