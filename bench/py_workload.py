"""py_workload.py: CPython as a real allocation-heavy program.

    PYTHONMALLOC=malloc python3 py_workload.py N

PYTHONMALLOC=malloc makes CPython call malloc/free for every object instead
of its own pymalloc arenas, so the allocator under test serves every int,
str, tuple, list and dict. N scales the work. Phases: a word-count dict,
records dumped to JSON and parsed back, regex scanning and substitution,
string building/splitting/formatting, sorting and list/tuple churn, and a
dict of tuple keys that grows and shrinks. Each phase checks its result two
ways and exits with status 1 on a mismatch. Prints one line with a CRC of
all results. Deterministic: its own seeded RNG, no set/hash ordering.
"""
import json
import re
import sys
import zlib
import random


def fail(msg):
    sys.stderr.write("FAIL py_workload: %s\n" % msg)
    sys.exit(1)


def main():
    n = int(sys.argv[1])
    rnd = random.Random(12345)
    crc = 0
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "zen", "pa", "qu", "rix"]
    words = ["".join(rnd.choice(syll) for _ in range(rnd.randint(1, 4))) for _ in range(n)]

    # 1. word counts in a dict
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    if sum(counts.values()) != n:
        fail("word counts")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    crc = zlib.crc32(repr(top).encode(), crc)

    # 2. JSON round trip of nested records
    records = [{"id": i, "name": w, "tags": [w[:2], w[-2:], str(i % 13)],
                "score": i * 0.5, "nested": {"a": i % 7, "b": str(i), "c": [i, -i]}}
               for i, w in enumerate(words)]
    text = json.dumps(records)
    back = json.loads(text)
    if back != records:
        fail("json round trip")
    crc = zlib.crc32(text.encode(), crc)
    del back, records

    # 3. regex: scan and substitute
    lines = ["%s@%d.example %d %s" % (w, i % 97, (i * 37) % 1000, w.upper()) for i, w in enumerate(words)]
    blob = "\n".join(lines)
    pat = re.compile(r"(\w+)@(\d+)\.example (\d+)")
    found = pat.findall(blob)
    if len(found) != n or sum(int(f[2]) for f in found) != sum((i * 37) % 1000 for i in range(n)):
        fail("regex findall")
    subbed = pat.sub(lambda m: m.group(2) + ":" + m.group(1)[::-1], blob)
    if subbed.count(":") != n:
        fail("regex sub")
    crc = zlib.crc32(subbed.encode(), crc)
    del found, subbed, blob

    # 4. strings: format, split, join, replace
    parts = []
    for i, line in enumerate(lines):
        f = line.split(" ")
        parts.append("|".join([f[2], f[0].replace("@", "#"), "%08x" % (i * 2654435761 % 2**32)]))
    joined = ",".join(parts)
    if joined.count(",") != n - 1 or len(joined.split(",")) != n:
        fail("string join/split")
    crc = zlib.crc32(joined.encode(), crc)
    del parts, joined, lines

    # 5. sorting, tuples, list comprehensions
    keyed = sorted(((len(w), w, i) for i, w in enumerate(words)), reverse=True)
    if [k[2] for k in keyed[:3]] != [k[2] for k in sorted(keyed, reverse=True)[:3]]:
        fail("sort")
    buckets = [[] for _ in range(64)]
    for ln, w, i in keyed:
        buckets[(ln * 7 + i) % 64].append((w, i))
    if sum(len(b) for b in buckets) != n:
        fail("buckets")
    crc = zlib.crc32(repr([b[:2] for b in buckets]).encode(), crc)
    del keyed, buckets

    # 6. a dict of tuple keys that grows and shrinks
    d = {}
    total = 0
    for i, w in enumerate(words):
        d[(w, i % 1000)] = [i, w * 2]
        if i % 3 == 2:
            k = (words[i - 2], (i - 2) % 1000)
            v = d.pop(k, None)
            if v is not None:
                total += v[0]
    total += sum(v[0] for v in d.values())
    # the same insertions and removals replayed on plain ints must agree
    expect = {}
    for i, w in enumerate(words):
        expect[(w, i % 1000)] = i
        if i % 3 == 2:
            expect.pop((words[i - 2], (i - 2) % 1000), None)
    if sorted(v[0] for v in d.values()) != sorted(expect.values()):
        fail("dict contents")
    crc = zlib.crc32(str(total).encode(), crc)

    print("python n=%d checksum=%016x" % (n, crc))


main()
