# libattest: the shared core, one module per .c/.h pair.
noinst_LIBRARIES += lib/libattest.a
lib_libattest_a_SOURCES = \
	lib/err.c lib/err.h \
	lib/buf.c lib/buf.h \
	lib/enc.c lib/enc.h \
	lib/at_limits.h
lib_libattest_a_SOURCES += \
	lib/cbor_rd.c lib/cbor_rd.h \
	lib/cbor_wr.c lib/cbor_wr.h \
	lib/cose.c lib/cose.h \
	lib/nitro.c lib/nitro.h \
	lib/x509v.c lib/x509v.h \
	lib/policy.c lib/policy.h \
	lib/evidence.c lib/evidence.h \
	lib/sim.c lib/sim.h
