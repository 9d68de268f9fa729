# attest-verifier: the central verifier service.
bin_PROGRAMS += verifier/attest-verifier
verifier_attest_verifier_SOURCES = \
	verifier/verifier.h verifier/main.c verifier/config.c verifier/keys.c verifier/keys.h \
	verifier/roots.c verifier/prune.c verifier/common.c verifier/audit_agg.c \
	verifier/route_attestations.c verifier/route_audit.c verifier/route_challenge.c \
	verifier/route_policies.c verifier/route_secrets.c verifier/route_sessions.c \
	verifier/route_tokens.c verifier/route_verify.c verifier/route_wellknown.c
verifier_attest_verifier_SOURCES += verifier/route_peer.c verifier/proof.c
verifier_attest_verifier_LDADD = $(AT_LIBS)
# The web console (GET /console/), installed beside the verifier's other data.
verifierwebdir = $(pkgdatadir)/console
dist_verifierweb_DATA = web/console/index.html web/console/app.js web/console/style.css
verifier_attest_verifier_CPPFLAGS = $(AM_CPPFLAGS) -DAT_VERIFIER_WEB_ROOT='"$(pkgdatadir)/console"'
