# cmocka unit tests (tests/unit), fuzz targets (tests/fuzz), end-to-end
# scripts (tests/e2e).
UNIT_LDADD = $(AT_LIBS) $(CMOCKA_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
EXTRA_DIST += tests/unit/test_util.h

check_PROGRAMS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_log
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LDADD)

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

check_PROGRAMS += tests/unit/test_sealfile
tests_unit_test_sealfile_SOURCES = tests/unit/test_sealfile.c
tests_unit_test_sealfile_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sealfile_LDADD = $(UNIT_LDADD)

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

# attestctl verify end to end (AT_BUILD / AT_SRCDIR come from Makefile.am).
TESTS += tests/e2e/verify_cli.sh
EXTRA_DIST += tests/e2e/verify_cli.sh

check_PROGRAMS += tests/unit/test_db
tests_unit_test_db_SOURCES = tests/unit/test_db.c
tests_unit_test_db_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_db_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_auditagg
tests_unit_test_auditagg_SOURCES = tests/unit/test_auditagg.c
tests_unit_test_auditagg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_auditagg_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_clock
tests_unit_test_clock_SOURCES = tests/unit/test_clock.c
tests_unit_test_clock_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_clock_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_hash
tests_unit_test_hash_SOURCES = tests/unit/test_hash.c tests/unit/test_util.h
tests_unit_test_hash_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hash_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=EVP_Digest
tests_unit_test_hash_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_ratelimit
tests_unit_test_ratelimit_SOURCES = tests/unit/test_ratelimit.c
tests_unit_test_ratelimit_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ratelimit_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_token
tests_unit_test_token_SOURCES = tests/unit/test_token.c
tests_unit_test_token_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_token_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_ear
tests_unit_test_ear_SOURCES = tests/unit/test_ear.c
tests_unit_test_ear_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ear_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_metrics
tests_unit_test_metrics_SOURCES = tests/unit/test_metrics.c
tests_unit_test_metrics_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_metrics_LDADD = $(UNIT_LDADD)

# Document binding in user_data (issue 7, section 1).
check_PROGRAMS += tests/unit/test_binding
tests_unit_test_binding_SOURCES = tests/unit/test_binding.c
tests_unit_test_binding_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_binding_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_peer
tests_unit_test_peer_SOURCES = tests/unit/test_peer.c tests/unit/test_util.h
tests_unit_test_peer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_peer_LDADD = $(UNIT_LDADD)
check_PROGRAMS += tests/unit/test_peer_http
tests_unit_test_peer_http_SOURCES = tests/unit/test_peer_http.c
tests_unit_test_peer_http_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_peer_http_LDADD = $(UNIT_LDADD)

# Fuzz target for lib/peer (handshake messages, records); corpus replayed.
check_PROGRAMS += tests/fuzz/replay_peer
tests_fuzz_replay_peer_SOURCES = tests/fuzz/fuzz_peer.c tests/fuzz/replay.c
tests_fuzz_replay_peer_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/peer"'
tests_fuzz_replay_peer_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/peer
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_peer
tests_fuzz_fuzz_peer_SOURCES = tests/fuzz/fuzz_peer.c
tests_fuzz_fuzz_peer_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_peer_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_peer_LDADD = $(AT_LIBS)
endif

check_PROGRAMS += tests/unit/test_file
tests_unit_test_file_SOURCES = tests/unit/test_file.c
tests_unit_test_file_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_file_LDFLAGS = -Wl,--wrap=write
tests_unit_test_file_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_httpd
tests_unit_test_httpd_SOURCES = tests/unit/test_httpd.c
tests_unit_test_httpd_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_httpd_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_addr
tests_unit_test_addr_SOURCES = tests/unit/test_addr.c
tests_unit_test_addr_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_addr_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_target
tests_unit_test_target_SOURCES = tests/unit/test_target.c
tests_unit_test_target_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_target_LDADD = $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_replay
tests_unit_test_replay_SOURCES = tests/unit/test_replay.c
tests_unit_test_replay_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_replay_LDADD = $(UNIT_LDADD)

# The sealed model file's reader (lib/sealfile): replayed by make check.
check_PROGRAMS += tests/fuzz/replay_sealfile
tests_fuzz_replay_sealfile_SOURCES = tests/fuzz/fuzz_sealfile.c tests/fuzz/replay.c
tests_fuzz_replay_sealfile_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/sealfile"'
tests_fuzz_replay_sealfile_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/sealfile
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_sealfile
tests_fuzz_fuzz_sealfile_SOURCES = tests/fuzz/fuzz_sealfile.c
tests_fuzz_fuzz_sealfile_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sealfile_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sealfile_LDADD = $(AT_LIBS)
endif

check_PROGRAMS += tests/unit/test_webstatic
tests_unit_test_webstatic_SOURCES = tests/unit/test_webstatic.c
tests_unit_test_webstatic_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_webstatic_LDADD = $(UNIT_LDADD)

# lib/pcrimport (the verifier's import preview takes files from the network).
check_PROGRAMS += tests/fuzz/replay_pcrimport
tests_fuzz_replay_pcrimport_SOURCES = tests/fuzz/fuzz_pcrimport.c tests/fuzz/replay.c
tests_fuzz_replay_pcrimport_CPPFLAGS = $(AM_CPPFLAGS) \
	-DAT_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/pcrimport"'
tests_fuzz_replay_pcrimport_LDADD = $(AT_LIBS)
EXTRA_DIST += tests/fuzz/corpus/pcrimport
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_pcrimport
tests_fuzz_fuzz_pcrimport_SOURCES = tests/fuzz/fuzz_pcrimport.c
tests_fuzz_fuzz_pcrimport_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pcrimport_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pcrimport_LDADD = $(AT_LIBS)
endif
