# libattest: the shared core, one module per .c/.h pair.
noinst_LIBRARIES += lib/libattest.a
lib_libattest_a_SOURCES = \
	lib/err.c lib/err.h \
	lib/buf.c lib/buf.h \
	lib/enc.c lib/enc.h \
	lib/hash.c lib/hash.h \
	lib/clock.c lib/clock.h \
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
lib_libattest_a_SOURCES += \
	lib/db.c lib/db.h \
	lib/db_engine.h lib/db_sqlite.c lib/db_pg.c \
	lib/audit.c lib/audit.h \
	lib/auditagg.c lib/auditagg.h \
	lib/ratelimit.c lib/ratelimit.h \
	lib/replay.c lib/replay.h \
	lib/ear.c lib/ear.h \
	lib/nonce.c lib/nonce.h \
	lib/httpd.c lib/httpd.h \
	lib/metrics.c lib/metrics.h \
	lib/httpc.c lib/httpc.h
nodist_lib_libattest_a_SOURCES = lib/schema_sql.c
BUILT_SOURCES = lib/schema_sql.c
CLEANFILES += lib/schema_sql.c
SCHEMA_SQL = $(sort $(wildcard $(top_srcdir)/schema/*.sql)) $(sort $(wildcard $(top_srcdir)/schema/pg/*.sql))
EXTRA_DIST += schema scripts/embed-sql.sh
lib/schema_sql.c: $(SCHEMA_SQL) $(top_srcdir)/scripts/embed-sql.sh
	$(AM_V_GEN)mkdir -p lib && $(SHELL) $(top_srcdir)/scripts/embed-sql.sh $@ $(SCHEMA_SQL)
# End-to-end encryption: HPKE (RFC 9180), Oblivious HTTP (RFC 9458 + chunked
# draft), Binary HTTP (RFC 9292).
lib_libattest_a_SOURCES += \
	lib/hpke.c lib/hpke.h
lib_libattest_a_SOURCES += \
	lib/bhttp.c lib/bhttp.h
lib_libattest_a_SOURCES += \
	lib/target.c lib/target.h
lib_libattest_a_SOURCES += \
	lib/ohttp.h \
	lib/ohttp_config.c lib/ohttp_config.h \
	lib/ohttp_keyset.c lib/ohttp_keyset.h \
	lib/ohttp_wire.c lib/ohttp_wire.h \
	lib/ohttp_chunked.c lib/ohttp_chunked.h \
	lib/ohttp_client.c lib/ohttp_client.h \
	lib/ohttp_server.c lib/ohttp_server.h \
	lib/testing.h
lib_libattest_a_SOURCES += \
	lib/seal.c lib/seal.h
lib_libattest_a_SOURCES += \
	lib/attester.c lib/attester.h
lib_libattest_a_SOURCES += \
	lib/token.c lib/token.h
lib_libattest_a_SOURCES += \
	lib/sealfile.c lib/sealfile.h \
	lib/progress.c lib/progress.h
lib_libattest_a_SOURCES += \
	lib/log.c lib/log.h
lib_libattest_a_SOURCES += \
	lib/binding.c lib/binding.h
# Mutual attestation between services (docs/mutual-attestation.md).
lib_libattest_a_SOURCES += \
	lib/peer.c lib/peer.h
lib_libattest_a_SOURCES += lib/peer_ear.c lib/peer_ear.h
lib_libattest_a_SOURCES += lib/peer_fd.c lib/peer_fd.h
lib_libattest_a_SOURCES += lib/peer_http.c lib/peer_http.h
lib_libattest_a_SOURCES += \
	lib/file.c lib/file.h
lib_libattest_a_SOURCES += \
	lib/vclient.c lib/vclient.h
lib_libattest_a_SOURCES += lib/cfgargs.c lib/cfgargs.h
lib_libattest_a_SOURCES += lib/webstatic.c lib/webstatic.h
lib_libattest_a_SOURCES += lib/pcrimport.c lib/pcrimport.h
