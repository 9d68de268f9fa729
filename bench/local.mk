# Benchmarks: built by `make bench`, not installed.
# HPKE seal+open per second vs raw X25519 + AEAD (`make bench` runs it).
noinst_PROGRAMS += bench/hpke
bench_hpke_SOURCES = bench/hpke.c
bench_hpke_LDADD = $(AT_LIBS)
.PHONY: bench
bench: bench/hpke$(EXEEXT)
	./bench/hpke$(EXEEXT)
