# libattest: the shared core, one module per .c/.h pair.
noinst_LIBRARIES += lib/libattest.a
lib_libattest_a_SOURCES = \
	lib/err.c lib/err.h \
	lib/buf.c lib/buf.h \
	lib/enc.c lib/enc.h \
	lib/limits.h
# End-to-end encryption: HPKE (RFC 9180), Oblivious HTTP (RFC 9458 + chunked
# draft), Binary HTTP (RFC 9292).
lib_libattest_a_SOURCES += \
	lib/hpke.c lib/hpke.h
lib_libattest_a_SOURCES += \
	lib/bhttp.c lib/bhttp.h
lib_libattest_a_SOURCES += \
	lib/ohttp.c lib/ohttp.h
