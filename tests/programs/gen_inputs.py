#!/usr/bin/python3
"""Generate the inputs of the real-program suite into DIR (run without
LD_PRELOAD, once per suite run; nothing large is committed).

  sort.txt  500,000 lines "word<TAB>number<TAB>word" (~13 MB)
  gz.bin    ~8 MB: text lines mixed with incompressible random blocks
"""
import os
import random
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
r = random.Random(4242)
SYL = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "bra", "cle", "dro",
       "fli", "gra", "pho", "qua", "stu", "thi", "wre", "an", "el", "is", "on"]
words = ["".join(r.choice(SYL) for _ in range(r.randint(1, 5))) for _ in range(20000)]

with open(os.path.join(out, "sort.txt"), "w") as f:
    lines = []
    for i in range(500000):
        lines.append("%s\t%d\t%s\n" % (r.choice(words), r.randrange(-10**9, 10**9), r.choice(words)))
        if len(lines) == 10000:
            f.write("".join(lines))
            lines = []
    f.write("".join(lines))

with open(os.path.join(out, "gz.bin"), "wb") as f:
    size = 0
    while size < 8 * 1024 * 1024:
        if r.random() < 0.8:
            chunk = " ".join(r.choice(words) for _ in range(r.randint(5, 400))).encode() + b"\n"
        else:
            chunk = r.randbytes(r.randint(1, 64 * 1024))
        f.write(chunk)
        size += len(chunk)
