# cmocka unit tests (tests/unit), fuzz targets (tests/fuzz), end-to-end
# scripts (tests/e2e).
UNIT_LDADD = $(AT_LIBS) $(CMOCKA_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

check_PROGRAMS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)

TESTS += $(check_PROGRAMS)
