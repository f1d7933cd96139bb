/* Sorts N pseudo-random integers with an insertion-sort-finished quicksort. */
#include <stdio.h>
#include <stdlib.h>

static unsigned lcg(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void sort_ints(int *a, long lo, long hi)
{
	while (hi - lo > 16) {
		int p = a[lo + (hi - lo) / 2];
		long i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j) {
				int t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		if (j - lo < hi - i) {
			sort_ints(a, lo, j);
			lo = i;
		} else {
			sort_ints(a, i, hi);
			hi = j;
		}
	}
	for (long i = lo + 1; i <= hi; i++) {
		int v = a[i];
		long k = i - 1;
		while (k >= lo && a[k] > v) {
			a[k + 1] = a[k];
			k--;
		}
		a[k + 1] = v;
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	unsigned seed = 42;
	int *a = malloc(sizeof(int) * (size_t)n);
	if (!a)
		return 1;
	for (long i = 0; i < n; i++)
		a[i] = (int)(lcg(&seed) % 1000000);
	sort_ints(a, 0, n - 1);
	for (long i = 1; i < n; i++)
		if (a[i - 1] > a[i])
			return 2;
	printf("sorted %ld, median %d\n", n, a[n / 2]);
	free(a);
	return 0;
}
