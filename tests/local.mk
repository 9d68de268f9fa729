# cmocka unit tests (tests/unit), fuzz targets (tests/fuzz), end-to-end
# scripts (tests/e2e).
UNIT_LDADD = $(AT_LIBS) $(CMOCKA_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

check_PROGRAMS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)

TESTS += $(check_PROGRAMS)

# End-to-end encryption (issue 3): hpke, ohttp, bhttp.
check_PROGRAMS += tests/unit/test_hpke
tests_unit_test_hpke_SOURCES = tests/unit/test_hpke.c
tests_unit_test_hpke_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hpke_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/data/hpke/rfc9180-x25519-vectors.txt tests/data/hpke/rfc9458-example.txt
check_PROGRAMS += tests/unit/test_bhttp
tests_unit_test_bhttp_SOURCES = tests/unit/test_bhttp.c
tests_unit_test_bhttp_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_bhttp_LDADD = $(UNIT_LDADD)
check_PROGRAMS += tests/unit/test_ohttp
tests_unit_test_ohttp_SOURCES = tests/unit/test_ohttp.c
tests_unit_test_ohttp_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ohttp_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/data/hpke/chunked-ohttp-example.txt

check_PROGRAMS += tests/unit/test_attester
tests_unit_test_attester_SOURCES = tests/unit/test_attester.c
tests_unit_test_attester_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_attester_LDADD = $(UNIT_LDADD)
# A tiny OHTTP gateway for end-to-end tests (stands in for the agent).
noinst_PROGRAMS += tests/e2e/ohttp_echo_server
tests_e2e_ohttp_echo_server_SOURCES = tests/e2e/ohttp_echo_server.c
tests_e2e_ohttp_echo_server_LDADD = $(AT_LIBS) $(MHD_LIBS)
TESTS += tests/e2e/ohttp_request.sh
dist_noinst_SCRIPTS += tests/e2e/ohttp_request.sh

# Interop with @hpke/core (npm): a JSON-driven C helper and its test.
noinst_PROGRAMS += tests/interop/hpke_tool
tests_interop_hpke_tool_SOURCES = tests/interop/hpke_tool.c
tests_interop_hpke_tool_LDADD = $(AT_LIBS)
TESTS += tests/e2e/hpke_interop.sh
dist_noinst_SCRIPTS += tests/e2e/hpke_interop.sh
EXTRA_DIST += tests/interop/hpke_interop.mjs

# Fuzz targets for bhttp decoding and OHTTP decapsulation: their corpora are
# replayed by `make check` everywhere; libFuzzer binaries with --enable-fuzzing.
check_PROGRAMS += tests/fuzz/replay_bhttp tests/fuzz/replay_ohttp
tests_fuzz_replay_bhttp_SOURCES = tests/fuzz/fuzz_bhttp.c tests/fuzz/replay.c
tests_fuzz_replay_bhttp_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/bhttp"'
tests_fuzz_replay_bhttp_LDADD = $(AT_LIBS)
tests_fuzz_replay_ohttp_SOURCES = tests/fuzz/fuzz_ohttp.c tests/fuzz/replay.c
tests_fuzz_replay_ohttp_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/ohttp"'
tests_fuzz_replay_ohttp_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/bhttp tests/fuzz/corpus/ohttp
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_bhttp tests/fuzz/fuzz_ohttp
tests_fuzz_fuzz_bhttp_SOURCES = tests/fuzz/fuzz_bhttp.c
tests_fuzz_fuzz_bhttp_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_bhttp_LDADD = $(AT_LIBS)
tests_fuzz_fuzz_ohttp_SOURCES = tests/fuzz/fuzz_ohttp.c
tests_fuzz_fuzz_ohttp_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_ohttp_LDADD = $(AT_LIBS)
endif

# Fuzz target for the verifier's request-text parsers (policy JSON, release
# proofs, base64, NSM responses).
check_PROGRAMS += tests/fuzz/replay_policy
tests_fuzz_replay_policy_SOURCES = tests/fuzz/fuzz_policy.c tests/fuzz/replay.c
tests_fuzz_replay_policy_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/policy"'
tests_fuzz_replay_policy_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/policy
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_policy
tests_fuzz_fuzz_policy_SOURCES = tests/fuzz/fuzz_policy.c
tests_fuzz_fuzz_policy_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_policy_LDADD = $(AT_LIBS)
endif
