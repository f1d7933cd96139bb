/* The subcommands' option parsing: getopt_long with perfbot's messages.
 * getopt's own messages are off (opterr = 0); each error is one line on
 * stderr, "perfbot CMD: ...", naming the option as it was typed, and the
 * command exits 2.  Long options must be spelt in full: getopt_long would
 * take "--rep" for "--repo", which configuration flags never allowed. */
#include "app/cmd.h"

#include <stdio.h>
#include <string.h>

/* The option token argv[i] names, without "=value", into out. */
static void option_name(char *out, size_t cap, const char *token)
{
	size_t n = strcspn(token, "=");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, token, n);
	out[n] = '\0';
}

static const struct option *find_long(const struct option *opts, const char *name)
{
	for (; opts && opts->name; opts++)
		if (strcmp(opts->name, name) == 0)
			return opts;
	return NULL;
}

/* One line, "perfbot CMD: WHAT 'NAME'AFTER", optionally pointing at --help;
 * the command then exits 2. */
static int stop(app_cmd_opts *o, const char *what, const char *name, const char *after, int hint)
{
	fprintf(stderr, "perfbot %s: %s '%s'%s", o->cmd, what, name, after);
	if (hint)
		fprintf(stderr, " (see perfbot %s --help)", o->cmd);
	fputc('\n', stderr);
	o->status = 2;
	return APP_CMD_STOP;
}

int app_cmd_getopt(app_cmd_opts *o, int argc, char **argv, int operands_allowed)
{
	static const struct option none[] = { { 0, 0, 0, 0 } };
	char optstring[64];
	char name[128];
	if (o->next == 0) {
		optind = 0; /* glibc: start over, argv may be another array */
		o->next = 1;
	}
	/* leading ':' tells a missing value from an unknown option */
	snprintf(optstring, sizeof(optstring), ":%s", o->shortopts ? o->shortopts : "");
	opterr = 0;
	int index = -1;
	int before = optind ? optind : 1;
	int c = getopt_long(argc, argv, optstring, o->longopts ? o->longopts : none, &index);
	o->next = optind;
	if (c == -1) {
		if (!operands_allowed && optind < argc)
			return stop(o, "unexpected argument", argv[optind], "", 1);
		return APP_CMD_END;
	}
	/* getopt permutes operands behind the options: the token just read is
	 * the first one at or after `before` that starts with '-' */
	const char *token = NULL;
	for (int i = before; i < optind && i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1]) {
			token = argv[i];
			break;
		}
	if (!token && optind > 0 && optind <= argc)
		token = argv[optind - 1];
	int is_long = token && token[0] == '-' && token[1] == '-';
	if (is_long)
		option_name(name, sizeof(name), token);
	else
		snprintf(name, sizeof(name), "-%c", optopt ? optopt : (token && token[1] ? token[1] : '?'));
	if (c == ':')
		return stop(o, "option", name, " needs a value", 0);
	if (c == '?') {
		const struct option *lo = is_long ? find_long(o->longopts, name + 2) : NULL;
		if (lo && lo->has_arg == no_argument && strchr(token, '='))
			return stop(o, "option", name, " takes no value", 0);
		return stop(o, "unknown option", name, "", 1);
	}
	if (index >= 0 && is_long && strcmp(name + 2, o->longopts[index].name) != 0)
		return stop(o, "unknown option", name, "", 1); /* an abbreviation */
	return c;
}
