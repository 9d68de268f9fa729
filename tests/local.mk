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
