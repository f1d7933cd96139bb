/* Inserts and looks up N string keys in an open-addressing hash map. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	char key[24];
	long value;
	int used;
} entry;

static unsigned long hash(const char *s)
{
	unsigned long h = 1469598103934665603UL;
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211UL;
	}
	return h;
}

static entry *find(entry *t, size_t cap, const char *key)
{
	size_t i = hash(key) & (cap - 1);
	while (t[i].used && strcmp(t[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	size_t cap = 1;
	while (cap < (size_t)n * 2)
		cap <<= 1;
	entry *t = calloc(cap, sizeof(entry));
	if (!t)
		return 1;
	char key[24];
	for (long i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key-%ld", i * 7919);
		entry *e = find(t, cap, key);
		memcpy(e->key, key, sizeof(key));
		e->value = i;
		e->used = 1;
	}
	long sum = 0;
	for (long i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key-%ld", i * 7919);
		sum += find(t, cap, key)->value;
	}
	printf("hashmap %ld, sum %ld\n", n, sum);
	free(t);
	return 0;
}
