# attest-gateway: the consumer's sealed OpenAI-compatible endpoint.
bin_PROGRAMS += gateway/attest-gateway
gateway_attest_gateway_SOURCES = \
	gateway/gateway.h gateway/main.c gateway/sessions.c gateway/route_openai.c
gateway_attest_gateway_LDADD = $(AT_LIBS)
# The chat page (GET /), installed beside the gateway's other data.
gatewaywebdir = $(pkgdatadir)/gateway
dist_gatewayweb_DATA = web/chat/index.html web/chat/app.js web/chat/style.css
gateway_attest_gateway_CPPFLAGS = $(AM_CPPFLAGS) -DAT_GATEWAY_WEB_ROOT='"$(pkgdatadir)/gateway"'
