/* Counts the primes below N (argv[1]). */
#include <stdio.h>
#include <stdlib.h>

#include "primes.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3000;
	printf("%d\n", count_primes(n));
	return 0;
}
