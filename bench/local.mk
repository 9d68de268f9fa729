# Benchmarks: built with the rest, run by hand (README quotes their figures).
noinst_PROGRAMS += bench/verifier
bench_verifier_SOURCES = bench/verifier.c
bench_verifier_LDADD = $(AT_LIBS)
