# attestctl: the command-line tool, one file per subcommand.
bin_PROGRAMS += ctl/attestctl
ctl_attestctl_SOURCES = \
	ctl/main.c ctl/ctl.h ctl/util.c
ctl_attestctl_LDADD = $(AT_LIBS) $(CURL_LIBS)
ctl_attestctl_SOURCES += ctl/cmd_hpke.c ctl/cmd_ohttp.c
