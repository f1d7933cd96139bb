/* Unit tests: PUBLIC_URL parsing and whether GitHub can reach an address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/error.h"
#include "base/url.h"

static void parses_what_a_proxy_or_tunnel_exposes(void **state)
{
	(void)state;
	static const struct {
		const char *in, *normal, *host;
		int port;
		const char *path;
	} ok[] = {
		{ "https://perfbot.example.com", "https://perfbot.example.com", "perfbot.example.com", 0, "" },
		{ "https://perfbot.example.com/", "https://perfbot.example.com", "perfbot.example.com", 0, "" },
		{ "HTTPS://PerfBot.Example.COM.:8443/ci/perfbot/", "https://perfbot.example.com:8443/ci/perfbot",
		  "perfbot.example.com", 8443, "/ci/perfbot" },
		{ "http://203.0.113.7:3000", "http://203.0.113.7:3000", "203.0.113.7", 3000, "" },
		{ "https://[2001:db8::1]:443/x", "https://[2001:db8::1]:443/x", "2001:db8::1", 443, "/x" },
		{ "https://abc-123.trycloudflare.com", "https://abc-123.trycloudflare.com", "abc-123.trycloudflare.com", 0, "" },
		{ "https://x.example/a%2Fb", "https://x.example/a%2Fb", "x.example", 0, "/a%2Fb" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		base_url u;
		char text[600];
		assert_int_equal(base_url_parse(&u, ok[i].in), 0);
		assert_string_equal(u.host, ok[i].host);
		assert_int_equal(u.port, ok[i].port);
		assert_string_equal(u.path, ok[i].path);
		assert_int_equal(base_url_format(text, sizeof(text), &u), 0);
		assert_string_equal(text, ok[i].normal);
	}
	base_url u;
	char small[8];
	assert_int_equal(base_url_parse(&u, "https://perfbot.example.com"), 0);
	assert_int_equal(base_url_format(small, sizeof(small), &u), BASE_ETOOBIG);
}

static void refuses_with_a_reason(void **state)
{
	(void)state;
	static const struct {
		const char *in, *reason;
	} bad[] = {
		{ "", "no URL given" },
		{ "perfbot.example.com", "must start with https://" },
		{ "ftp://perfbot.example.com", "must start with https://" },
		{ "javascript:alert(1)", "must start with https://" },
		{ "https://perfbot.example.com/?x=1", "query" },
		{ "https://perfbot.example.com/#top", "fragment" },
		{ "https://user:pw@perfbot.example.com", "user name or password" },
		{ "https://", "no host" },
		{ "https://:443/", "no host" },
		{ "https://perfbot.example.com:0", "port" },
		{ "https://perfbot.example.com:65536", "port" },
		{ "https://perfbot.example.com:44x", "port" },
		{ "https://perfbot.example.com:", "port" },
		{ "https://perf bot.example.com", "printable ASCII" },
		{ "https://caf\xc3\xa9.example", "printable ASCII" },
		{ "https://perfbot.example.com/a/../b", "\"..\"" },
		{ "https://perfbot.example.com//x", "empty" },
		{ "https://perfbot.example.com/a\"b", "path prefix" },
		{ "https://perfbot.example.com/a<b", "path prefix" },
		{ "https://perfbot.example.com/a%zz", "hex" },
		{ "https://perfbot.example.com/a%2", "hex" },
		{ "https://[2001:db8::1", "closing ']'" },
		{ "https://[not-v6]", "not an IPv6 address" },
		{ "https://[fe80::1%25eth0]", "not an IPv6 address" },
		{ "https://[::1]x", "after its IPv6" },
		{ "http://127.1", "four decimal numbers" },
		{ "http://0x7f.0.0.1", "four decimal numbers" },
		{ "http://1.2.3.400", "four decimal numbers" },
		{ "https://-perfbot.example.com", "starts or ends with '-'" },
		{ "https://perfbot..example.com", "empty or overlong" },
		{ "https://per<fbot.example.com", "only letters" },
		{ "https://a\\b@c.example", "user name" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base_url u;
		int rc = base_url_parse(&u, bad[i].in);
		if (rc != BASE_EINVALID || !strstr(base_error_last(), bad[i].reason))
			fail_msg("%s: got %d \"%s\", expected \"%s\"", bad[i].in, rc, base_error_last(), bad[i].reason);
	}
	assert_int_equal(base_url_parse(&(base_url){ 0 }, NULL), BASE_EINVALID);
	char longer[700];
	memset(longer, 'a', sizeof(longer) - 1);
	memcpy(longer, "https://", 8);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(base_url_parse(&(base_url){ 0 }, longer), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "longer than"));
}

static void classifies_addresses_and_names(void **state)
{
	(void)state;
	static const struct {
		const char *host;
		base_host_kind kind;
	} cases[] = {
		{ "127.0.0.1", BASE_HOST_LOOPBACK },
		{ "127.255.0.9", BASE_HOST_LOOPBACK },
		{ "::1", BASE_HOST_LOOPBACK },
		{ "[::1]", BASE_HOST_LOOPBACK },
		{ "::ffff:127.0.0.1", BASE_HOST_LOOPBACK },
		{ "localhost", BASE_HOST_LOOPBACK },
		{ "LOCALHOST.", BASE_HOST_LOOPBACK },
		{ "perfbot.localhost", BASE_HOST_LOOPBACK },
		{ "10.1.2.3", BASE_HOST_PRIVATE },
		{ "172.16.0.1", BASE_HOST_PRIVATE },
		{ "172.31.255.255", BASE_HOST_PRIVATE },
		{ "192.168.1.10", BASE_HOST_PRIVATE },
		{ "fd12:3456::1", BASE_HOST_PRIVATE },
		{ "fc00::1", BASE_HOST_PRIVATE },
		{ "::ffff:10.0.0.1", BASE_HOST_PRIVATE },
		{ "169.254.169.254", BASE_HOST_LINK_LOCAL },
		{ "fe80::1", BASE_HOST_LINK_LOCAL },
		{ "100.64.0.1", BASE_HOST_CGNAT },
		{ "100.127.255.254", BASE_HOST_CGNAT },
		{ "0.0.0.0", BASE_HOST_UNSPECIFIED },
		{ "::", BASE_HOST_UNSPECIFIED },
		{ "", BASE_HOST_UNSPECIFIED },
		{ "224.0.0.1", BASE_HOST_RESERVED },
		{ "255.255.255.255", BASE_HOST_RESERVED },
		{ "ff02::1", BASE_HOST_RESERVED },
		{ "perfbot", BASE_HOST_LOCAL_NAME },
		{ "buildbox.local", BASE_HOST_LOCAL_NAME },
		{ "ci.corp.internal", BASE_HOST_LOCAL_NAME },
		{ "nas.home.arpa", BASE_HOST_LOCAL_NAME },
		{ "router.lan", BASE_HOST_LOCAL_NAME },
		/* the neighbours of each range are public */
		{ "172.15.255.255", BASE_HOST_PUBLIC },
		{ "172.32.0.1", BASE_HOST_PUBLIC },
		{ "100.63.255.255", BASE_HOST_PUBLIC },
		{ "100.128.0.1", BASE_HOST_PUBLIC },
		{ "192.169.0.1", BASE_HOST_PUBLIC },
		{ "11.0.0.1", BASE_HOST_PUBLIC },
		{ "8.8.8.8", BASE_HOST_PUBLIC },
		{ "2606:4700::1", BASE_HOST_PUBLIC },
		{ "perfbot.example.com", BASE_HOST_PUBLIC },
		{ "perfbot.example.com.", BASE_HOST_PUBLIC },
		{ "local.example.com", BASE_HOST_PUBLIC },
		{ "localhost.example.com", BASE_HOST_PUBLIC },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (base_host_classify(cases[i].host) != cases[i].kind)
			fail_msg("%s: got kind %d, expected %d", cases[i].host, base_host_classify(cases[i].host),
				 cases[i].kind);
}

static void reach_says_why(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		base_reach reach;
		const char *why;
	} cases[] = {
		{ "https://perfbot.example.com", BASE_REACH_OK, "" },
		{ "https://[2606:4700::1]/p", BASE_REACH_OK, "" },
		{ "http://perfbot.example.com", BASE_REACH_NO_TLS, "not encrypted" },
		{ "http://203.0.113.7:3000", BASE_REACH_NO_TLS, "not encrypted" },
		{ "http://127.0.0.1:3000", BASE_REACH_UNREACHABLE, "127.0.0.1 is a loopback address" },
		{ "https://localhost", BASE_REACH_UNREACHABLE, "localhost is a loopback address" },
		{ "https://192.168.1.10", BASE_REACH_UNREACHABLE, "192.168.1.10 is a private network address" },
		{ "https://[fd00::5]", BASE_REACH_UNREACHABLE, "fd00::5 is a private network address" },
		{ "https://169.254.1.1", BASE_REACH_UNREACHABLE, "link-local" },
		{ "https://100.64.1.1", BASE_REACH_UNREACHABLE, "carrier-grade NAT" },
		{ "http://0.0.0.0:3000", BASE_REACH_UNREACHABLE, "every interface" },
		{ "https://perfbot", BASE_REACH_UNREACHABLE, "perfbot is a local name" },
		{ "https://perfbot.local", BASE_REACH_UNREACHABLE, "local name" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		base_url u;
		char why[200] = "x";
		assert_int_equal(base_url_parse(&u, cases[i].url), 0);
		base_reach r = base_url_reach(&u, why, sizeof(why));
		if (r != cases[i].reach || !strstr(why, cases[i].why) || (cases[i].why[0] == '\0' && why[0]))
			fail_msg("%s: got %d \"%s\", expected %d \"%s\"", cases[i].url, r, why, cases[i].reach, cases[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_what_a_proxy_or_tunnel_exposes),
		cmocka_unit_test(refuses_with_a_reason),
		cmocka_unit_test(classifies_addresses_and_names),
		cmocka_unit_test(reach_says_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
