#!/usr/bin/python3
"""Allocation-heavy Python workload with deterministic output.

Run by tests/suites/40-programs.sh as
    PYTHONMALLOC=malloc /usr/bin/python3 tests/programs/workload.py
once on glibc and once with LD_PRELOAD=libgomalloc.so; stdout must match.
Nothing printed depends on hash seeds, addresses or timing.
"""
import hashlib
import json
import random
import re
import sys
from collections import Counter, defaultdict

SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rng = random.Random(20240601)
SYL = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "bra", "cle", "dro",
       "fli", "gra", "pho", "qua", "stu", "thi", "wre", "an", "el", "is", "on"]


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def word(r):
    return "".join(r.choice(SYL) for _ in range(r.randint(1, 4)))


def section_dicts():
    """Build, update and shrink large dicts of mixed values."""
    d = {}
    for i in range(120000 * SCALE):
        k = "k%d_%s" % (rng.randrange(150000), word(rng))
        v = d.get(k)
        if v is None:
            d[k] = [i, str(i), {"n": i % 97}]
        else:
            v.append(i)
            v[2]["n"] += 1
        if i % 5 == 0:
            d.pop("k%d_%s" % (rng.randrange(150000), word(rng)), None)
    by_len = defaultdict(int)
    for k, v in d.items():
        by_len[len(v)] += 1
    top = sorted(d.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
    print("dicts: %d keys, lengths %s" % (len(d), sorted(by_len.items())))
    print("dicts: top", [(k, len(v)) for k, v in top], digest(sorted(d.keys())[:1000]))


def make_record(r, i):
    return {
        "id": i,
        "name": word(r).capitalize() + " " + word(r).capitalize(),
        "tags": [word(r) for _ in range(r.randint(0, 6))],
        "score": round(r.random() * 1000, 3),
        "active": r.random() < 0.5,
        "nested": {"a": [r.randint(0, 1000) for _ in range(r.randint(0, 10))],
                   "b": {"c": word(r), "d": None}},
    }


def section_json():
    """JSON dumps/loads round trips of many records."""
    r = random.Random(7)
    records = [make_record(r, i) for i in range(20000 * SCALE)]
    total = 0
    h = hashlib.sha256()
    for rnd in range(3):
        text = json.dumps(records, sort_keys=(rnd % 2 == 0), indent=(None if rnd else 1))
        back = json.loads(text)
        assert back == records, "json round trip changed data"
        total += len(text)
        h.update(text.encode())
        # modify and go again
        for rec in records[rnd::7]:
            rec["tags"].append("r%d" % rnd)
            rec["score"] = round(rec["score"] / 2, 3)
    per_line = [json.loads(json.dumps(rec)) for rec in records[:5000]]
    assert per_line == records[:5000]
    print("json: %d records, %d bytes over 3 rounds, sha %s" % (len(records), total, h.hexdigest()[:16]))


def section_regex():
    """Regexes over generated text."""
    r = random.Random(11)
    lines = []
    for i in range(60000 * SCALE):
        parts = [word(r) for _ in range(r.randint(3, 12))]
        if i % 7 == 0:
            parts.append("user%d@host%d.example.org" % (r.randrange(1000), r.randrange(50)))
        if i % 11 == 0:
            parts.append("%d-%02d-%02d" % (2000 + r.randrange(30), 1 + r.randrange(12), 1 + r.randrange(28)))
        if i % 13 == 0:
            parts.append("#%06x" % r.randrange(1 << 24))
        lines.append(" ".join(parts))
    text = "\n".join(lines)
    emails = re.findall(r"\b([a-z0-9]+)@([a-z0-9]+)\.example\.org\b", text)
    dates = re.findall(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    colors = re.findall(r"#([0-9a-f]{6})\b", text)
    words = Counter(re.findall(r"\b[a-z]+\b", text))
    swapped = re.sub(r"(\w+)@(\w+)", lambda m: m.group(2) + "@" + m.group(1), text)
    pieces = re.split(r"[.\n]+", text)
    years = Counter(y for y, _, _ in dates)
    print("regex: %d emails, %d dates, %d colors, %d pieces" % (len(emails), len(dates), len(colors), len(pieces)))
    print("regex: common words", sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    print("regex: years", sorted(years.items())[:5], "swapped sha",
          hashlib.sha256(swapped.encode()).hexdigest()[:16])


def section_strings():
    """String building: concatenation, join, format, replace, slicing."""
    r = random.Random(13)
    acc = []
    s = ""
    for i in range(150000 * SCALE):
        w = word(r)
        acc.append("%s:%d:%s" % (w, i, w[::-1].upper()))
        if i % 100 == 0:
            s += w * (i % 7)
        if len(s) > 100000:
            s = s[len(s) // 3:].replace("ka", "KA")
    big = "|".join(acc)
    fields = big.split("|")
    rebuilt = "|".join(fields)
    assert rebuilt == big
    up = big.upper().lower().replace(":", ";")
    print("strings: %d fields, %d chars, tail %s, sha %s" % (
        len(fields), len(big), s[-20:], hashlib.sha256(up.encode()).hexdigest()[:16]))


def section_sorting():
    """Sorting lists of tuples, strings and objects."""
    r = random.Random(17)
    tuples = [(r.randrange(1000), word(r), r.random()) for _ in range(200000 * SCALE)]
    tuples.sort()
    strings = sorted((word(r) + str(r.randrange(100)) for _ in range(150000 * SCALE)), key=lambda x: (len(x), x))

    class Item:
        __slots__ = ("a", "b")

        def __init__(self, a, b):
            self.a, self.b = a, b

    items = [Item(r.randrange(5000), word(r)) for _ in range(100000 * SCALE)]
    items.sort(key=lambda it: (it.b, -it.a))
    print("sorting:", tuples[0][:2], tuples[-1][:2], strings[:3], strings[-2:],
          [(it.a, it.b) for it in items[:3]], digest([t[1] for t in tuples[::997]]))


def section_churn():
    """Many short-lived objects: lists of dicts, sets, bytes."""
    r = random.Random(19)
    keep = []
    total = 0
    for i in range(300000 * SCALE):
        obj = {"i": i, "s": {r.randrange(100) for _ in range(r.randrange(8))}, "b": bytes(r.randrange(300))}
        total += len(obj["s"]) + len(obj["b"])
        if i % 50 == 0:
            keep.append(obj)
        if len(keep) > 2000:
            del keep[::2]
    print("churn: total %d kept %d" % (total, len(keep)))


def main():
    section_dicts()
    section_json()
    section_regex()
    section_strings()
    section_sorting()
    section_churn()
    print("done")


if __name__ == "__main__":
    main()
