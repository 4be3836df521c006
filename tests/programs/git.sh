#!/usr/bin/env bash
# git workload: a repository with many generated files over several commits;
# log, diff, blame, archive, gc, fsck. Dates and identities are fixed, so
# every hash is deterministic.
set -eu
export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME="Test Author" GIT_AUTHOR_EMAIL=author@example.org
export GIT_COMMITTER_NAME="Test Committer" GIT_COMMITTER_EMAIL=committer@example.org
mkdir -p "$HOME"
git init -q -b main repo
cd repo
git config core.autocrlf false
git config gc.auto 0
git config pack.window 4
git config pack.threads 2

gen() { # gen COMMIT: (re)write the tree for commit number COMMIT
    awk -v c="$1" 'BEGIN {
        srand(1000 + c);
        split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu", w, " ");
        for (d = 0; d < 12; d++) {
            system("mkdir -p dir" d);
            for (f = 0; f < 24; f++) {
                # each commit rewrites about a third of the files
                if (c > 1 && (f * 7 + d + c) % 3 != 0) continue;
                file = "dir" d "/file" f ".txt";
                n = 20 + int(rand() * 180);
                for (l = 0; l < n; l++) {
                    line = "";
                    k = 1 + int(rand() * 12);
                    for (j = 0; j < k; j++) line = line w[1 + int(rand() * 12)] " ";
                    print line l " " (l * c) % 97 > file;
                }
                close(file);
            }
        }
    }'
}

for c in 1 2 3 4 5 6 7 8; do
    gen "$c"
    if [ "$c" -ge 4 ]; then rm -f "dir$c/file$c.txt"; fi
    export GIT_AUTHOR_DATE="2024-01-0$c 12:00:00 +0000" GIT_COMMITTER_DATE="2024-01-0$c 12:30:00 +0000"
    git add -A
    git commit -q -m "commit $c" -m "generated content for round $c"
    if [ "$c" = 5 ]; then git tag -a v1 -m "tag v1"; fi
done
git log --format='%H %an %ad %s' --date=iso
git log --stat --format='== %h %s' | tail -n 40
git diff --stat HEAD~4 HEAD | tail -n 5
git diff HEAD~3 HEAD | sha256sum
git diff -M --numstat v1 HEAD | sha256sum
git blame -s dir1/file3.txt | sha256sum
git archive --format=tar HEAD | sha256sum
git rev-list --all --objects | wc -l
git gc -q
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
git fsck --full --strict --no-progress && echo fsck ok
git repack -a -d -q -f --window=8 --depth=20
git fsck --full --no-progress && echo fsck after repack ok
git cat-file --batch-all-objects --batch-check | sha256sum
git describe --tags
