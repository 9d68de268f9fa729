# The installed libattest: a versioned shared library (libtool; SONAME
# libattest.so.0) with the modules an integrator needs to verify documents,
# run the mutual-attestation handshake, speak OHTTP and check EAR tokens, its
# public headers in $(includedir)/attest/ and attest.pc. The servers' own
# modules (database, HTTP server, audit, metrics, tokens) stay out, and the
# binaries keep linking the static lib/libattest.a: the in-tree binaries stay
# real executables (no libtool wrappers) and nothing they run depends on
# which libattest.so the loader finds.
lib_LTLIBRARIES = lib/libattest.la
lib_libattest_la_SOURCES = \
	lib/err.c lib/buf.c lib/enc.c lib/hash.c lib/clock.c lib/file.c lib/log.c \
	lib/cbor_rd.c lib/cbor_wr.c lib/cose.c lib/nitro.c lib/x509v.c lib/policy.c lib/evidence.c \
	lib/sim.c lib/attester.c lib/binding.c lib/peer.c lib/peer_ear.c lib/peer_fd.c lib/ear.c \
	lib/httpc.c lib/httpd.c lib/vclient.c lib/target.c lib/seal.c \
	lib/hpke.c lib/bhttp.c lib/ohttp_config.c lib/ohttp_keyset.c lib/ohttp_wire.c \
	lib/ohttp_chunked.c lib/ohttp_client.c lib/ohttp_server.c
lib_libattest_la_CFLAGS = $(AM_CFLAGS)
# -version-info current:revision:age (libtool's rules): 0:0:0 is libattest.so.0.0.0.
lib_libattest_la_LDFLAGS = -version-info 0:0:0 -export-symbols-regex '^at_' $(AT_SHLIB_LDFLAGS)
lib_libattest_la_LIBADD = $(MHD_LIBS) $(OPENSSL_LIBS) $(CBOR_LIBS) $(JANSSON_LIBS) $(CJOSE_LIBS) $(CURL_LIBS) -lpthread
pkginclude_HEADERS = \
	lib/err.h lib/buf.h lib/at_limits.h lib/enc.h lib/hash.h lib/clock.h \
	lib/cose.h lib/nitro.h lib/x509v.h lib/policy.h lib/evidence.h \
	lib/sim.h lib/attester.h lib/binding.h lib/peer.h lib/peer_ear.h lib/peer_fd.h lib/ear.h lib/vclient.h \
	lib/hpke.h lib/bhttp.h lib/ohttp.h lib/ohttp_config.h lib/ohttp_keyset.h lib/ohttp_client.h \
	lib/ohttp_server.h lib/ohttp_chunked.h
# attest.pc is written at install time, so `make install prefix=...` names
# the directories the files really went to.
pkgconfigdir = $(libdir)/pkgconfig
EXTRA_DIST += lib/attest.pc.in examples/verify_doc.c
install-data-local: install-attest-pc
uninstall-local: uninstall-attest-pc
install-attest-pc:
	$(MKDIR_P) '$(DESTDIR)$(pkgconfigdir)'
	sed -e 's|@prefix[@]|$(prefix)|g' -e 's|@exec_prefix[@]|$(exec_prefix)|g' -e 's|@libdir[@]|$(libdir)|g' \
		-e 's|@includedir[@]|$(includedir)|g' -e 's|@PACKAGE_URL[@]|$(PACKAGE_URL)|g' \
		-e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g' $(srcdir)/lib/attest.pc.in >'$(DESTDIR)$(pkgconfigdir)/attest.pc'
uninstall-attest-pc:
	rm -f '$(DESTDIR)$(pkgconfigdir)/attest.pc'
.PHONY: install-attest-pc uninstall-attest-pc
# The installed tree: headers compile alone, examples/verify_doc.c builds
# with pkg-config against it and runs.
TESTS += tests/e2e/install_tree.sh
EXTRA_DIST += tests/e2e/install_tree.sh
