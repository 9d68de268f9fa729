# Man pages: help2man runs each built program's --help, so the OPTIONS can
# never drift from it; man/NAME.h2m adds the hand-written NAME, DESCRIPTION
# and SEE ALSO. Without help2man (configure says so) none are made.
at_man_pages = man/attest-verifier.1 man/attest-agent.1 man/attest-gateway.1 man/attestctl.1
EXTRA_DIST += man/attest-verifier.h2m man/attest-agent.h2m man/attest-gateway.h2m man/attestctl.h2m
if HAVE_HELP2MAN
man1_MANS = $(at_man_pages)
CLEANFILES += $(at_man_pages)
at_help2man = $(MKDIR_P) man && $(HELP2MAN) --no-info --no-discard-stderr --version-string='$(VERSION)'
man/attest-verifier.1: verifier/attest-verifier$(EXEEXT) $(srcdir)/man/attest-verifier.h2m
	$(AM_V_GEN)$(at_help2man) --include=$(srcdir)/man/attest-verifier.h2m -o $@.tmp ./verifier/attest-verifier && mv $@.tmp $@
man/attest-agent.1: agent/attest-agent$(EXEEXT) $(srcdir)/man/attest-agent.h2m
	$(AM_V_GEN)$(at_help2man) --include=$(srcdir)/man/attest-agent.h2m -o $@.tmp ./agent/attest-agent && mv $@.tmp $@
man/attest-gateway.1: gateway/attest-gateway$(EXEEXT) $(srcdir)/man/attest-gateway.h2m
	$(AM_V_GEN)$(at_help2man) --include=$(srcdir)/man/attest-gateway.h2m -o $@.tmp ./gateway/attest-gateway && mv $@.tmp $@
man/attestctl.1: ctl/attestctl$(EXEEXT) $(srcdir)/man/attestctl.h2m
	$(AM_V_GEN)$(at_help2man) --include=$(srcdir)/man/attestctl.h2m -o $@.tmp ./ctl/attestctl && mv $@.tmp $@
endif
# Each man page renders without warnings and lists every option --help shows.
TESTS += tests/e2e/man_pages.sh
EXTRA_DIST += tests/e2e/man_pages.sh
