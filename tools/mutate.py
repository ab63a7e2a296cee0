#!/usr/bin/env python3
"""mutate.py — does the test suite catch what it claims?  (make mutate)

Applies each small code mutation listed in tools/mutations.txt, one at a
time, to a scratch copy of the tree under /tmp, rebuilds and runs the test
binaries (stopping at the first that fails).  A mutant is *killed* when a
test fails, crashes or times out on it (--timeout), *survived* when the
whole suite still passes.  The real tree is only
read: the copy holds the tracked and untracked-but-not-ignored files, and
builds from scratch there, so it works from a clean clone.

    tools/mutate.py [--list FILE] [--only ID[,ID...]] [--keep] [--timeout S]

Exit status: 0 when every mutant is killed, 1 when any survives, 2 when
the list is stale (a snippet is missing or not unique), a mutant does not
build, or the unmutated suite fails.  Standard library only.

List format: blocks of

    @@ ID | CLASS | FILE | what the mutation breaks, in one line
    - original line(s), exactly as in FILE after "- "
    + replacement line(s) after "+ " (none: the lines are deleted)

The original must occur exactly once in FILE.  '#' lines between blocks are
comments.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Mutation:
    def __init__(self, ident, cls, path, desc, line):
        self.id, self.cls, self.path, self.desc = ident, cls, path, desc
        self.line = line  # where it starts in the list, for errors
        self.old, self.new = [], []


def parse(list_path):
    muts, cur = [], None
    with open(list_path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            where = f"{list_path}:{n}"
            if line.startswith("@@"):
                parts = [p.strip() for p in line[2:].split("|", 3)]
                if len(parts) != 4 or not all(parts):
                    sys.exit(f"{where}: error: want '@@ ID | CLASS | FILE | "
                             f"description'")
                cur = Mutation(*parts, line=where)
                if any(m.id == cur.id for m in muts):
                    sys.exit(f"{where}: error: duplicate id '{cur.id}'")
                muts.append(cur)
            elif line.startswith("-") or line.startswith("+"):
                if cur is None:
                    sys.exit(f"{where}: error: snippet line before any @@")
                body = line[2:] if len(line) > 1 else ""
                if len(line) > 1 and line[1] != " ":
                    sys.exit(f"{where}: error: want '- ' or '+ ' then the text")
                if line[0] == "-":
                    if cur.new:
                        sys.exit(f"{where}: error: '-' line after a '+' line")
                    cur.old.append(body)
                else:
                    cur.new.append(body)
            elif line.strip() and not line.startswith("#"):
                sys.exit(f"{where}: error: unexpected line: {line}")
    for m in muts:
        if not m.old:
            sys.exit(f"{m.line}: error: mutation '{m.id}' has no '-' lines")
    return muts


def check_snippets(muts, tree):
    """Every original occurs exactly once; returns the problems."""
    bad = []
    for m in muts:
        path = os.path.join(tree, m.path)
        if not os.path.isfile(path):
            bad.append(f"{m.line}: {m.id}: no file {m.path}")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        k = text.count("\n".join(m.old))
        if k != 1:
            bad.append(f"{m.line}: {m.id}: the original occurs {k} times in "
                       f"{m.path} (want exactly once)")
    return bad


def copy_tree(dst):
    """The tree as git sees it (tracked + untracked, not ignored)."""
    files = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], check=True, capture_output=True).stdout
    for rel in files.decode().split("\0"):
        if not rel or not os.path.lexists(os.path.join(ROOT, rel)):
            continue  # deleted but not yet committed
        os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(dst, rel),
                     follow_symlinks=False)


def run(cmd, cwd, timeout, env=None):
    """(returncode or None on timeout, output tail).  The whole process
    group goes on timeout: tests start dsc, cc and shells."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out.decode(errors="replace")[-2000:]
    return p.returncode, out.decode(errors="replace")[-2000:]


def build(tree, timeout):
    return run(["make", "-j2", "--no-print-directory", "test-build"], tree,
               timeout)


def test_binaries(tree):
    d = os.path.join(tree, "build", "tests")
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.startswith("test_") and
                  os.access(os.path.join(d, f), os.X_OK))


def run_tests(tree, deadline):
    """None if every test binary passes, else (binary, 'failed'|'timeout',
    output tail).  Stops at the first failure: one is enough to kill."""
    env = dict(os.environ, DSC=os.path.join(tree, "build", "dsc"),
               EXAMPLE=os.path.join(tree, "build", "example_seed"))
    for t in test_binaries(tree):
        left = deadline - time.monotonic()
        if left <= 0:
            return os.path.basename(t), "timeout", ""
        rc, out = run([t, "--jobs", "2"], tree, left, env)
        if rc != 0:
            return os.path.basename(t), "timeout" if rc is None else "failed", out
    return None


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    # A fresh mtime, so make rebuilds whatever depends on the file.
    now = time.time()
    os.utime(path, (now, now))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", default=os.path.join(ROOT, "tools",
                                                   "mutations.txt"))
    ap.add_argument("--only", help="comma-separated mutation ids")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch tree (its path is printed)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds for one mutant's build + tests (600)")
    a = ap.parse_args()

    muts = parse(a.list)
    if a.only:
        want = a.only.split(",")
        unknown = [w for w in want if w not in {m.id for m in muts}]
        if unknown:
            sys.exit(f"mutate: error: unknown id(s): {', '.join(unknown)}")
        muts = [m for m in muts if m.id in want]
    scratch = tempfile.mkdtemp(prefix="dsc-mutate-")
    tree = os.path.join(scratch, "dsc")
    try:
        copy_tree(tree)
        bad = check_snippets(muts, tree)
        if bad:
            print("mutate: the list is stale:\n  " + "\n  ".join(bad))
            return 2
        print(f"mutate: {len(muts)} mutations, scratch tree {tree}",
              flush=True)
        t0 = time.monotonic()
        rc, out = build(tree, 3600)
        if rc != 0:
            print(f"mutate: the unmutated tree does not build:\n{out}")
            return 2
        fail = run_tests(tree, time.monotonic() + 3600)
        if fail:
            print(f"mutate: the unmutated suite fails ({fail[0]}, "
                  f"{fail[1]}):\n{fail[2]}")
            return 2
        print(f"mutate: baseline built and passed in "
              f"{time.monotonic() - t0:.0f} s", flush=True)

        results, broken = [], []
        for i, m in enumerate(muts, 1):
            t1 = time.monotonic()
            deadline = t1 + a.timeout
            path = os.path.join(tree, m.path)
            with open(path, encoding="utf-8") as f:
                original = f.read()
            write(path, original.replace("\n".join(m.old),
                                         "\n".join(m.new), 1))
            rc, out = build(tree, a.timeout)
            if rc != 0:  # not a test's doing: the list needs fixing
                verdict = "NOBUILD"
                by = "build timeout" if rc is None else \
                    (out.strip().splitlines() or ["?"])[-1][:100]
                broken.append(m)
            else:
                fail = run_tests(tree, deadline)
                if fail:
                    verdict, by = "killed", f"{fail[0]} ({fail[1]})"
                else:
                    verdict, by = "SURVIVED", "-"
            write(path, original)
            results.append((m, verdict, by))
            print(f"[{i:2d}/{len(muts)}] {verdict:8s} {m.id:34s} "
                  f"{time.monotonic() - t1:5.0f} s  {by}", flush=True)

        killed = sum(v == "killed" for _, v, _ in results)
        survived = [m for m, v, _ in results if v == "SURVIVED"]
        print("\nmutate: per class")
        classes = {}
        for m, v, _ in results:
            k = classes.setdefault(m.cls, [0, 0, 0])
            k[0 if v == "killed" else 1 if v == "SURVIVED" else 2] += 1
        print(f"  {'class':20s} killed survived")
        for cls, (k, s, _) in classes.items():
            print(f"  {cls:20s} {k:6d} {s:8d}")
        for m in survived:
            print(f"  survived: {m.id} ({m.path}): {m.desc}")
        for m in broken:
            print(f"  does not build: {m.id} ({m.path}): fix the list")
        print(f"\nmutate: {len(results)} mutants: {killed} killed, "
              f"{len(survived)} survived"
              + (f", {len(broken)} did not build" if broken else "")
              + f" ({time.monotonic() - t0:.0f} s)")
        return 2 if broken else 1 if survived else 0
    finally:
        if a.keep:
            print(f"mutate: kept {tree}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
