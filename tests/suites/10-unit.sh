# Component unit tests (tests/unit/*.c, linked with libgomalloc.a), the
# size-class generator check, and the statically linked program.
t sizeclasses_regenerate 30 bash -c '"$B/tools/mksizeclasses" | diff -u "$top/src/sizeclasses.h" - && echo "PASS sizeclasses_regenerate"'
for u in "$B"/tests/unit_*; do
    t "$(basename "$u")" 300 "$u"
done
t static_link 60 "$B/tests/static_link"
