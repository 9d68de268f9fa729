# attest-gateway: the consumer's sealed OpenAI-compatible endpoint.
bin_PROGRAMS += gateway/attest-gateway
gateway_attest_gateway_SOURCES = \
	gateway/gateway.h gateway/main.c gateway/sessions.c gateway/route_openai.c
gateway_attest_gateway_LDADD = $(AT_LIBS)
