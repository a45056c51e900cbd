// Two unsynchronised writes that `make test-tsan` must report, one between std::threads and
// one between the threads of an OpenMP region: the suppressions, ignore_noninstrumented_modules
// and libomp's Archer tool (Makefile, tests/tsan.supp) must silence libraries, not our code.
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <thread>

namespace {

int shared_counter = 0;

void Increment() { ++shared_counter; }  // no lock: the race the test expects

void ThreadsRace() {
  std::thread a(Increment), b(Increment);
  a.join();
  b.join();
}

void OpenMpRace() {
  omp_set_num_threads(2);
#pragma omp parallel
  Increment();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "threads") == 0) {
    ThreadsRace();
  } else if (argc == 2 && std::strcmp(argv[1], "openmp") == 0) {
    OpenMpRace();
  } else {
    std::fprintf(stderr, "usage: tsan_canary threads|openmp\n");
    return 2;
  }
  std::printf("counter %d\n", shared_counter);
  return 0;
}
