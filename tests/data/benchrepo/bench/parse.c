/* Parses N generated "name=value;" records into integers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long parse_number(const char **p)
{
	long v = 0;
	while (**p >= '0' && **p <= '9')
		v = v * 10 + (*(*p)++ - '0');
	return v;
}

static long parse_records(const char *s)
{
	long total = 0;
	while (*s) {
		while (*s && *s != '=')
			s++;
		if (!*s)
			break;
		s++;
		total += parse_number(&s);
		if (*s == ';')
			s++;
	}
	return total;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
	size_t cap = (size_t)n * 32 + 1, len = 0;
	char *text = malloc(cap);
	if (!text)
		return 1;
	for (long i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "field%ld=%ld;", i % 97, i * 31);
	long total = 0;
	for (int round = 0; round < 10; round++)
		total += parse_records(text);
	printf("parsed %ld records, total %ld\n", n, total);
	free(text);
	return 0;
}
