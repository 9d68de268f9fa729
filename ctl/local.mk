# attestctl: the command-line tool, one file per subcommand.
bin_PROGRAMS += ctl/attestctl
ctl_attestctl_SOURCES = \
	ctl/main.c ctl/ctl.h ctl/util.c \
	ctl/client.c ctl/cmd_attest.c ctl/cmd_audit.c ctl/cmd_ear.c ctl/cmd_model.c ctl/cmd_policy.c ctl/cmd_secret.c \
	ctl/cmd_sim.c ctl/cmd_token.c ctl/cmd_verify.c
ctl_attestctl_LDADD = $(AT_LIBS) $(CURL_LIBS)
ctl_attestctl_SOURCES += ctl/cmd_hpke.c ctl/cmd_ohttp.c
ctl_attestctl_SOURCES += ctl/cmd_peer.c
ctl_attestctl_SOURCES += ctl/cmd_session.c
