# Benchmarks: always compiled (so they cannot rot), run with `make bench`,
# not installed. AT_BENCH_SECONDS sets the seconds per case.
noinst_PROGRAMS += bench/verify
bench_verify_SOURCES = bench/verify.c
bench_verify_LDADD = $(AT_LIBS)

.PHONY: bench
bench: bench/verify$(EXEEXT)
	./bench/verify$(EXEEXT)
