# Benchmarks: built with the rest, run by `make bench` (README quotes their
# figures). Each prints a ratio against the raw crypto cost of the same run.
noinst_PROGRAMS += bench/verifier
bench_verifier_SOURCES = bench/verifier.c
bench_verifier_LDADD = $(AT_LIBS)
# HPKE seal+open per second vs raw X25519 + AEAD.
noinst_PROGRAMS += bench/hpke
bench_hpke_SOURCES = bench/hpke.c
bench_hpke_LDADD = $(AT_LIBS)
.PHONY: bench
bench: bench/hpke$(EXEEXT) bench/verifier$(EXEEXT)
	./bench/hpke$(EXEEXT)
	AT_BUILD=$(abs_top_builddir) ./bench/verifier$(EXEEXT)
