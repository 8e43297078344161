// Make libgomp (omp_get_num_procs, the default thread count) see FAKE_CPUS processors on a smaller machine.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
int pthread_getaffinity_np(pthread_t thread, size_t cpusetsize, cpu_set_t *cpuset) {
  (void)thread;
  int n = atoi(getenv("FAKE_CPUS") ? getenv("FAKE_CPUS") : "2");
  memset(cpuset, 0, cpusetsize);
  for (int i = 0; i < n && (size_t)i < cpusetsize * 8; i++) CPU_SET_S(i, cpusetsize, cpuset);
  return 0;
}
