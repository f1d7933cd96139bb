#ifndef PRIMES_H
#define PRIMES_H

/* 1 when n is prime. */
int is_prime(int n);

/* How many primes are below n. */
int count_primes(int n);

#endif
