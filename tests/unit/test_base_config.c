/* Unit tests: .env parsing, configuration precedence and errors, capped
 * buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/config.h"
#include "base/error.h"
#include "base/utf8.h"

struct kv { char text[4096]; };

static int collect(const char *k, const char *v, void *payload)
{
	struct kv *kv = payload;
	size_t n = strlen(kv->text);
	snprintf(kv->text + n, sizeof(kv->text) - n, "%s=[%s];", k, v);
	return 0;
}

static void test_dotenv_forms(void **state)
{
	(void)state;
	struct kv kv = { "" };
	const char *text =
		"# comment\n"
		"\n"
		"A=1\n"
		"export B = two words  # trailing comment\n"
		"C=\"quoted # not a comment\"\n"
		"D='single $x'\n"
		"E=\"line1\\nline2\"\n"
		"F=\"multi\nline\"\n"
		"G=\n"
		"H=a#b\n";
	assert_int_equal(base_dotenv_parse(text, collect, &kv), 0);
	assert_string_equal(kv.text, "A=[1];B=[two words];C=[quoted # not a comment];D=[single $x];"
				     "E=[line1\nline2];F=[multi\nline];G=[];H=[a#b];");
}

static void test_dotenv_errors_name_line(void **state)
{
	(void)state;
	struct kv kv = { "" };
	assert_int_equal(base_dotenv_parse("A=1\nB=\"open\n", collect, &kv), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "line 2"));
	assert_int_equal(base_dotenv_parse("A=1\n\nnot a pair\n", collect, &kv), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "line 3"));
}

static char tmpdir[256];

static void write_dotenv(const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/.env", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/perfbot-cfg-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	unsetenv("PORT");
	unsetenv("WEBHOOK_SECRET");
	unsetenv("HOST");
	unsetenv("DATA_DIR");
	unsetenv("PRIVATE_KEY_PATH");
	unsetenv("GITHUB_API_URL");
	unsetenv("GHE_HOST");
	unsetenv("DATABASE_URL");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/.env", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

static void test_defaults(void **state)
{
	(void)state;
	write_dotenv("");
	base_config *c = NULL;
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_int_equal(c->port, 3000);
	assert_string_equal(c->host, "127.0.0.1");
	assert_string_equal(c->webhook_path, "/api/github/webhooks");
	/* ./var, made absolute: a relative path would be resolved against a
	 * checked-out repository by libgit2 */
	char cwd[4096], want[4200];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/var", cwd);
	assert_string_equal(c->data_dir, want);
	snprintf(want, sizeof(want), "sqlite:%s/var/perfbot.db", cwd);
	assert_string_equal(c->database_url, want);
	assert_string_equal(c->github_api_url, "https://api.github.com");
	assert_int_equal(c->max_body, 25u << 20);
	assert_true(c->workers >= 1);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	assert_int_equal(c->bench_workers, cores > 1 ? cores - 1 : 1);
	assert_null(c->webhook_secret);
	base_config_free(c);
}

/* DATABASE_URL names SQLite or PostgreSQL; a bad one stops start-up with
 * a line naming the variable and never the password in it. */
static void test_database_url(void **state)
{
	(void)state;
	write_dotenv("");
	static const char *const good[] = { "postgres://perfbot:pw@db.example:5432/perfbot?sslmode=require",
					    "postgresql://db/perfbot", "postgres://u:pw@[::1]:5432/x", "sqlite:/tmp/x.db",
					    "/tmp/x.db" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		base_config *c = NULL;
		setenv("DATABASE_URL", good[i], 1);
		assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
		assert_string_equal(c->database_url, good[i]);
		base_config_free(c);
	}
	static const char *const bad[] = { "mysql://u:hunter2@db/x", "postgres://u:hunter2@db:pg/x",
					   "postgres:hunter2", "postgres://u:hunter2@db:/x", "sqlite:" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base_config *c = NULL;
		setenv("DATABASE_URL", bad[i], 1);
		assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
		assert_non_null(strstr(base_error_last(), "DATABASE_URL"));
		assert_null(strstr(base_error_last(), "hunter2"));
	}
	unsetenv("DATABASE_URL");
}

static void test_precedence(void **state)
{
	(void)state;
	write_dotenv("PORT=4001\nWEBHOOK_SECRET=\"from-file\"\nHOST=0.0.0.0\nGHE_HOST=ghe.example.com\n");
	setenv("PORT", "4002", 1);
	base_config *c = NULL;
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_int_equal(c->port, 4002); /* environment beats .env */
	assert_string_equal(c->webhook_secret, "from-file");
	assert_string_equal(c->github_api_url, "https://ghe.example.com/api/v3");
	base_config_free(c);

	char *argv[] = { "--port", "4003", "--host=::1", "--json", NULL };
	char **rest = NULL;
	assert_int_equal(base_config_load(&c, tmpdir, 4, argv, &rest), 0);
	assert_int_equal(c->port, 4003); /* flags beat the environment */
	assert_string_equal(c->host, "::1");
	assert_string_equal(rest[0], "--json");
	assert_null(rest[1]);
	free(rest);
	base_config_free(c);
	unsetenv("PORT");
}

static void test_bad_values_name_variable(void **state)
{
	(void)state;
	write_dotenv("");
	base_config *c = NULL;
	setenv("PORT", "abc", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PORT"));
	assert_non_null(strstr(base_error_last(), "abc"));
	unsetenv("PORT");

	setenv("PRIVATE_KEY_PATH", "/nonexistent/key.pem", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PRIVATE_KEY_PATH"));
	unsetenv("PRIVATE_KEY_PATH");

	char *argv[] = { "--no-such-flag", NULL };
	assert_int_equal(base_config_load(&c, tmpdir, 1, argv, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "--no-such-flag"));

	/* the managed backend without one of its settings stops start-up,
	 * naming the first missing one, never a value */
	setenv("PERFBOT_AGENT", "managed", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "ANTHROPIC_API_KEY: required by the managed agent backend"));
	setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_ID: required"));
	setenv("PERFBOT_MANAGED_ENVIRONMENT_ID", "env_011CZabc", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_KEY: required"));
	setenv("PERFBOT_MANAGED_ENVIRONMENT_KEY", "envkey-secret-value", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_MODEL: required"));
	assert_null(strstr(base_error_last(), "secret-value"));
	setenv("PERFBOT_MANAGED_MODEL", "bad model", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_MODEL: expected a model id"));
	setenv("PERFBOT_MANAGED_ENVIRONMENT_KEY", "envkey secret-value", 1);
	setenv("PERFBOT_MANAGED_MODEL", "claude-opus-4-5", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_KEY: a key holds no spaces"));
	assert_null(strstr(base_error_last(), "secret-value"));
	setenv("PERFBOT_MANAGED_ENVIRONMENT_KEY", "envkey-secret-value", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_string_equal(c->agent, "managed");
	assert_int_equal(base_config_managed_ready(c), 0);
	base_config_free(c);
	c = NULL;
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("PERFBOT_MANAGED_ENVIRONMENT_ID");
	unsetenv("PERFBOT_MANAGED_ENVIRONMENT_KEY");
	unsetenv("PERFBOT_MANAGED_MODEL");
	setenv("PERFBOT_AGENT", "other", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_AGENT: expected command or managed"));
	unsetenv("PERFBOT_AGENT");

	char *argv2[] = { "--max-body", "lots", NULL };
	assert_int_equal(base_config_load(&c, tmpdir, 2, argv2, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "MAX_BODY"));

	char *argv3[] = { "--log-format", "xml", NULL };
	assert_int_equal(base_config_load(&c, tmpdir, 2, argv3, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "LOG_FORMAT"));

	setenv("BENCH_WORKERS", "0", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "BENCH_WORKERS"));
	setenv("BENCH_WORKERS", "3", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_int_equal(c->bench_workers, 3);
	base_config_free(c);
	unsetenv("BENCH_WORKERS");
}

/* The managed backend's settings: defaults, a checked URL, ids and model
 * names; a malformed key is named but never echoed. */
static void test_managed_settings(void **state)
{
	(void)state;
	static const char *const names[] = { "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "PERFBOT_MANAGED_ENVIRONMENT_ID",
					     "PERFBOT_MANAGED_ENVIRONMENT_KEY", "PERFBOT_MANAGED_MODEL",
					     "PERFBOT_MANAGED_AGENT_ID", NULL };
	for (int i = 0; names[i]; i++)
		unsetenv(names[i]);
	write_dotenv("");
	base_config *c = NULL;
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_string_equal(c->anthropic_base_url, "https://api.anthropic.com");
	assert_null(c->anthropic_api_key);
	assert_null(c->managed_environment_id);
	assert_null(c->managed_environment_key);
	assert_null(c->managed_model);
	assert_null(c->managed_agent_id);
	base_config_free(c);

	write_dotenv("ANTHROPIC_API_KEY=sk-ant-api03-abc_DEF-123\nPERFBOT_MANAGED_ENVIRONMENT_KEY=envkey-xyz\n"
		     "PERFBOT_MANAGED_ENVIRONMENT_ID=env_011CZabc\nPERFBOT_MANAGED_MODEL=claude-opus-4-5\n"
		     "PERFBOT_MANAGED_AGENT_ID=agent_011CZdef\nANTHROPIC_BASE_URL=http://127.0.0.1:8080/api//\n");
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_string_equal(c->anthropic_api_key, "sk-ant-api03-abc_DEF-123");
	assert_string_equal(c->managed_environment_key, "envkey-xyz");
	assert_string_equal(c->managed_environment_id, "env_011CZabc");
	assert_string_equal(c->managed_model, "claude-opus-4-5");
	assert_string_equal(c->managed_agent_id, "agent_011CZdef");
	assert_string_equal(c->anthropic_base_url, "http://127.0.0.1:8080/api");
	base_config_free(c);
	write_dotenv("");

	static const char *const bad_urls[] = { "ftp://x", "api.anthropic.com", "https://", "https://user:pw@host",
						"https://host/a b", "https://host/?q=1", "http:///path", NULL };
	for (int i = 0; bad_urls[i]; i++) {
		setenv("ANTHROPIC_BASE_URL", bad_urls[i], 1);
		assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
		assert_non_null(strstr(base_error_last(), "ANTHROPIC_BASE_URL: expected an http or https URL"));
		assert_null(strchr(base_error_last(), '\n'));
	}
	unsetenv("ANTHROPIC_BASE_URL");

	setenv("ANTHROPIC_API_KEY", "sk-ant secret with spaces", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "ANTHROPIC_API_KEY:"));
	assert_null(strstr(base_error_last(), "secret with"));
	unsetenv("ANTHROPIC_API_KEY");
	setenv("PERFBOT_MANAGED_ENVIRONMENT_KEY", "envkey\x01hidden", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_KEY:"));
	assert_null(strstr(base_error_last(), "hidden"));
	unsetenv("PERFBOT_MANAGED_ENVIRONMENT_KEY");

	setenv("PERFBOT_MANAGED_ENVIRONMENT_ID", "env/../x", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_ID: expected an environment id"));
	unsetenv("PERFBOT_MANAGED_ENVIRONMENT_ID");
	char *argv[] = { "--perfbot-managed-agent-id", "agent 1", NULL };
	assert_int_equal(base_config_load(&c, tmpdir, 2, argv, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_AGENT_ID"));
	setenv("PERFBOT_MANAGED_MODEL", "claude opus", 1);
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_MODEL: expected a model id"));
	unsetenv("PERFBOT_MANAGED_MODEL");
}

/* The whole-sandbox limits: defaults, sizes in any unit, 0 for none, and
 * errors that name the variable. */
static void test_sandbox_limits(void **state)
{
	(void)state;
	write_dotenv("SANDBOX_DISK=512MiB\n");
	base_config *c = NULL;
	assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), 0);
	assert_int_equal(c->sandbox_memory, 8ULL << 30);
	assert_int_equal(c->sandbox_pids, 512);
	assert_int_equal(c->sandbox_cpu_s, 3600);
	assert_int_equal(c->sandbox_disk, 512ULL << 20);
	assert_int_equal(c->sandbox_disk_reserve, 1ULL << 30);
	base_config_free(c);

	char *argv[] = { "--sandbox-memory", "2GiB", "--sandbox-pids", "0", "--sandbox-cpu-seconds", "60",
			 "--sandbox-disk", "0", NULL };
	assert_int_equal(base_config_load(&c, tmpdir, 8, argv, NULL), 0);
	assert_int_equal(c->sandbox_memory, 2ULL << 30);
	assert_int_equal(c->sandbox_pids, 0);
	assert_int_equal(c->sandbox_cpu_s, 60);
	assert_int_equal(c->sandbox_disk, 0);
	base_config_free(c);

	static const char *const bad[][2] = {
		{ "SANDBOX_MEMORY", "lots" }, { "SANDBOX_MEMORY", "1MiB" }, { "SANDBOX_PIDS", "-1" },
		{ "SANDBOX_PIDS", "3" },      { "SANDBOX_DISK", "10 GiB" }, { "SANDBOX_CPU_SECONDS", "1h" },
		{ "SANDBOX_DISK_RESERVE", "x" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i][0], bad[i][1], 1);
		assert_int_equal(base_config_load(&c, tmpdir, 0, NULL, NULL), BASE_EINVALID);
		if (!strstr(base_error_last(), bad[i][0]))
			fail_msg("%s=%s: %s", bad[i][0], bad[i][1], base_error_last());
		unsetenv(bad[i][0]);
	}
}

static void test_buf_cap(void **state)
{
	(void)state;
	base_buf b = BASE_BUF_INIT(10);
	assert_int_equal(base_buf_puts(&b, "12345"), 0);
	assert_int_equal(base_buf_puts(&b, "67890"), 0);
	assert_int_equal(base_buf_puts(&b, "x"), BASE_ETOOBIG);
	assert_string_equal(base_buf_cstr(&b), "1234567890");
	assert_int_equal(base_buf_printf(&b, "%d", 1), BASE_ETOOBIG);
	base_buf_reset(&b);
	assert_int_equal(base_buf_printf(&b, "%s-%d", "ab", 42), 0);
	assert_string_equal(base_buf_cstr(&b), "ab-42");
	base_buf_dispose(&b);
}

static void test_utf8(void **state)
{
	(void)state;
	/* "a" + U+00E9 (2 bytes) + U+20AC (3 bytes): cuts never split a character */
	const char *s = "a\xc3\xa9\xe2\x82\xac";
	assert_int_equal(base_utf8_cut(s, 6, 10), 6);
	assert_int_equal(base_utf8_cut(s, 6, 2), 1);
	assert_int_equal(base_utf8_cut(s, 6, 3), 3);
	assert_int_equal(base_utf8_cut(s, 6, 5), 3);
	assert_int_equal(base_utf8_whole(s, 6), 6);
	assert_int_equal(base_utf8_whole(s, 5), 3);
	assert_int_equal(base_utf8_whole(s, 4), 3);
	assert_int_equal(base_utf8_whole(s, 2), 1);
	assert_int_equal(base_utf8_whole("ab", 2), 2);
	/* an error message cut by its buffer ends on a whole character */
	char longer[1100];
	memset(longer, 'x', sizeof(longer));
	memcpy(longer + 1021, "\xe2\x82\xac", 3); /* bytes 1021..1023: the third is cut off */
	longer[sizeof(longer) - 1] = '\0';
	base_error_set(BASE_EINVALID, "%s", longer);
	assert_int_equal(strlen(base_error_last()), 1021);
	size_t n = 0;
	char *c = base_utf8_clean(s, 6, &n);
	assert_string_equal(c, s);
	free(c);
	/* a lone continuation byte, an overlong form, a surrogate, a NUL, a cut sequence */
	const char bad[] = "x\x80y\xc0\xafz\xed\xa0\x80w\0v\xe2\x82";
	c = base_utf8_clean(bad, sizeof(bad) - 1, &n);
	assert_string_equal(c, "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdw"
			       "\xef\xbf\xbdv\xef\xbf\xbd\xef\xbf\xbd");
	assert_int_equal(n, strlen(c));
	free(c);
}

static void test_error_context_wraps_previous(void **state)
{
	(void)state;
	base_error_set(BASE_EINVALID, "key is neither PEM nor base64");
	assert_int_equal(base_error_set(BASE_EINVALID, "PRIVATE_KEY: %s", base_error_last()), BASE_EINVALID);
	assert_string_equal(base_error_last(), "PRIVATE_KEY: key is neither PEM nor base64");
	assert_int_equal(base_error_code(), BASE_EINVALID);
	base_error_clear();
	assert_string_equal(base_error_last(), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dotenv_forms),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_dotenv_errors_name_line),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_database_url),
		cmocka_unit_test(test_bad_values_name_variable),
		cmocka_unit_test(test_sandbox_limits),
		cmocka_unit_test(test_managed_settings),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_error_context_wraps_previous),
	};
	return cmocka_run_group_tests_name("base_config", tests, setup, teardown);
}
