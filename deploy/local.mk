# deploy/systemd: hardened units for the three servers and an example JSON
# configuration for each (copy NAME.json.example to NAME.json and edit).
# The units name the installed binaries and configuration: @bindir@,
# @sysconfdir@ and @docdir@ are filled in at build time.
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = deploy/systemd/attest-verifier.service deploy/systemd/attest-gateway.service \
	deploy/systemd/attest-agent.service
attestconfdir = $(sysconfdir)/attest
dist_attestconf_DATA = deploy/systemd/verifier.json.example deploy/systemd/gateway.json.example \
	deploy/systemd/agent.json.example
EXTRA_DIST += deploy/systemd/attest-verifier.service.in deploy/systemd/attest-gateway.service.in \
	deploy/systemd/attest-agent.service.in
CLEANFILES += $(systemdunit_DATA)
at_unit_subst = sed -e 's|@bindir[@]|$(bindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@docdir[@]|$(docdir)|g'
deploy/systemd/attest-verifier.service: $(srcdir)/deploy/systemd/attest-verifier.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) deploy/systemd && $(at_unit_subst) $< >$@.tmp && mv $@.tmp $@
deploy/systemd/attest-gateway.service: $(srcdir)/deploy/systemd/attest-gateway.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) deploy/systemd && $(at_unit_subst) $< >$@.tmp && mv $@.tmp $@
deploy/systemd/attest-agent.service: $(srcdir)/deploy/systemd/attest-agent.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) deploy/systemd && $(at_unit_subst) $< >$@.tmp && mv $@.tmp $@
# systemd-analyze verify on the units (with this build's binaries).
TESTS += tests/e2e/systemd_units.sh
EXTRA_DIST += tests/e2e/systemd_units.sh
