/* The clock under load: a chain of dependent adds, one a cycle (perf counts no cycles in this VM). */
#include <stdio.h>
#include <time.h>
int main(void) {
    unsigned long x = 0, y = 1; const long n = 200000000;
    struct timespec a, b;
    for (int rep = 0; rep < 3; rep++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        __asm__ volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
                         "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0" : "+r"(x) : "r"(y));
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("%.3f GHz (dependent adds: %.0f per second)\n", 10.0 * n / s / 1e9, 10.0 * n / s);
    }
    return (int)(x & 1);
}
