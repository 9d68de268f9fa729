# attest-agent: inside the attested instance or enclave.
bin_PROGRAMS += agent/attest-agent
agent_attest_agent_SOURCES = \
	agent/agent.h agent/main.c agent/session.c agent/route_ohttp.c agent/upstream.c
agent_attest_agent_LDADD = $(AT_LIBS)
