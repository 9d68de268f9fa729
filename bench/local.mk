# Benchmarks: always compiled (so they cannot rot), run with `make bench`,
# not installed; README quotes their figures. Each prints a ratio against
# the raw crypto cost measured in the same run.
# Evidence core: cold / cached-intermediates / cached-chain documents vs raw
# ECDSA P-384 (AT_BENCH_SECONDS sets the seconds per case).
noinst_PROGRAMS += bench/verify
bench_verify_SOURCES = bench/verify.c
bench_verify_LDADD = $(AT_LIBS)
# HPKE seal+open per second vs raw X25519 + AEAD.
noinst_PROGRAMS += bench/hpke
bench_hpke_SOURCES = bench/hpke.c
bench_hpke_LDADD = $(AT_LIBS)
# The verifier over HTTP (full attestation cycle) vs in-process.
noinst_PROGRAMS += bench/verifier
bench_verifier_SOURCES = bench/verifier.c
bench_verifier_LDADD = $(AT_LIBS)
# Sealed model files (lib/sealfile) vs plain copying and raw AES-256-GCM.
noinst_PROGRAMS += bench/seal
bench_seal_SOURCES = bench/seal.c
bench_seal_LDADD = $(AT_LIBS)
# Mutual attestation (lib/peer): handshakes vs 2 signatures + 2 verifications + 2 X25519, records vs AES-GCM.
noinst_PROGRAMS += bench/peer
bench_peer_SOURCES = bench/peer.c
bench_peer_LDADD = $(AT_LIBS)

# gateway + agent vs the LLM stand-in directly, 1 and 8 connections
# (bench/gateway.py --short for a quick look).
EXTRA_DIST += bench/gateway.py

.PHONY: bench
bench: bench/verify$(EXEEXT) bench/hpke$(EXEEXT) bench/verifier$(EXEEXT) bench/seal$(EXEEXT) bench/peer$(EXEEXT)
	./bench/verify$(EXEEXT)
	./bench/hpke$(EXEEXT)
	AT_BUILD=$(abs_top_builddir) ./bench/verifier$(EXEEXT)
	./bench/seal$(EXEEXT)
	./bench/peer$(EXEEXT)
	AT_BUILD=$(abs_top_builddir) python3 $(srcdir)/bench/gateway.py
