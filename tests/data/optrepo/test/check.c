/* The primes below 10, 100, 1000 and a few perfect squares. */
#include <stdio.h>

#include "primes.h"

int main(void)
{
	int failed = 0;
	if (count_primes(10) != 4 || count_primes(100) != 25 || count_primes(1000) != 168)
		failed = 1;
	if (is_prime(4) || is_prime(9) || is_prime(25) || is_prime(49) || !is_prime(2) || !is_prime(97))
		failed = 1;
	puts(failed ? "FAIL" : "ok");
	return failed;
}
