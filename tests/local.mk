# cmocka unit tests (tests/unit), fuzz targets (tests/fuzz), end-to-end
# scripts (tests/e2e).
UNIT_LDADD = $(AT_LIBS) $(CMOCKA_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
EXTRA_DIST += tests/unit/test_util.h

check_PROGRAMS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_cbor_rd
tests_unit_test_cbor_rd_SOURCES = tests/unit/test_cbor_rd.c tests/unit/test_util.h
tests_unit_test_cbor_rd_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cbor_rd_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_cose
tests_unit_test_cose_SOURCES = tests/unit/test_cose.c tests/unit/test_util.h
tests_unit_test_cose_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cose_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_nitro
tests_unit_test_nitro_SOURCES = tests/unit/test_nitro.c tests/unit/test_util.h
tests_unit_test_nitro_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_nitro_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_x509v
tests_unit_test_x509v_SOURCES = tests/unit/test_x509v.c tests/unit/test_util.h
tests_unit_test_x509v_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_x509v_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_policy
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c tests/unit/test_util.h
tests_unit_test_policy_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_policy_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_evidence
tests_unit_test_evidence_SOURCES = tests/unit/test_evidence.c tests/unit/test_util.h
tests_unit_test_evidence_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_evidence_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_sim
tests_unit_test_sim_SOURCES = tests/unit/test_sim.c tests/unit/test_util.h
tests_unit_test_sim_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_LDADD = $(UNIT_LDADD)

# Fuzz targets: the replay driver runs each corpus under `make check` in
# every build; with --enable-fuzzing (CC=clang) the libFuzzer binary too.
check_PROGRAMS += tests/fuzz/replay_cose
tests_fuzz_replay_cose_SOURCES = tests/fuzz/fuzz_cose.c tests/fuzz/replay.c
tests_fuzz_replay_cose_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/cose"'
tests_fuzz_replay_cose_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/cose tests/fuzz/sim_root.pem tests/fuzz/cose.dict
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_cose
tests_fuzz_fuzz_cose_SOURCES = tests/fuzz/fuzz_cose.c
tests_fuzz_fuzz_cose_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_cose_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_cose_LDADD = $(AT_LIBS)
endif

TESTS += $(check_PROGRAMS)

# End-to-end scripts run the real binaries; in VPATH builds they find the
# binaries through AT_BUILD and the test data through AT_SRCDIR.
AM_TESTS_ENVIRONMENT = AT_BUILD='$(abs_top_builddir)'; AT_SRCDIR='$(abs_top_srcdir)'; \
	export AT_BUILD AT_SRCDIR;
TESTS += tests/e2e/verify_cli.sh
EXTRA_DIST += tests/e2e/verify_cli.sh
