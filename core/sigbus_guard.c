/*
 * The SIGBUS guard: keeps the process alive when a file that mmapd has mapped is shrunk by
 * another process, and records which mapping was hit.
 *
 * Touching a page of a shared file mapping that now lies past the file's end raises SIGBUS, whose
 * default action kills the process. The handler below looks the faulting address up in a table of
 * mmapd's mappings; when it is inside one, it maps anonymous zero pages over the rest of that
 * mapping (MAP_FIXED), so the faulting load or store completes when the handler returns, and it
 * counts the fault for that mapping and for the process. JavaScript reads the counters through a
 * typed-array view of `guard` and turns a counted fault into an error for the binding's commands.
 * Any other SIGBUS goes to the handler that was installed before (Bun's crash reporter).
 *
 * Compiled once per process by TinyCC (bun:ffi cc) on the main thread; worker threads use the same
 * table and functions through their addresses, because a signal disposition is process-wide.
 * Each mapping is registered, touched and released by one thread only, so a slot never changes
 * under a handler running for that mapping; slots are claimed with compare-and-swap because
 * several threads register mappings at the same time.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef GUARD_CAPACITY
#define GUARD_CAPACITY 65536
#endif

/* The layout JavaScript reads: keep sigbus_guard.ts's offsets in step (guard_layout checks). */
struct guard {
  volatile int32_t faults;     /* faults absorbed so far, by every thread */
  int32_t capacity;            /* GUARD_CAPACITY */
  int32_t installed;           /* 1 once the handler is in place */
  int32_t reserved;
  volatile uintptr_t start[GUARD_CAPACITY]; /* [start, end) of a registered mapping; 0 = free */
  volatile uintptr_t end[GUARD_CAPACITY];
  volatile int32_t slot_faults[GUARD_CAPACITY]; /* faults absorbed in each slot since it was claimed */
};

static struct guard guard;
static struct sigaction previous;
static uintptr_t page_mask;

/* x86-64 atomics: this TinyCC has neither __sync nor __atomic builtins. */
static void atomic_increment(volatile int32_t *counter) {
  __asm__ __volatile__("lock; incl %0" : "+m"(*counter) : : "memory");
}

static int compare_and_swap(volatile uintptr_t *cell, uintptr_t expected, uintptr_t desired) {
  uintptr_t seen;
  __asm__ __volatile__("lock; cmpxchgq %2, %1"
                       : "=a"(seen), "+m"(*cell)
                       : "r"(desired), "0"(expected)
                       : "memory", "cc");
  return seen == expected;
}

/* Hands a SIGBUS that is not ours to the handler installed before this one. */
static void chain(int signal_number, siginfo_t *info, void *context) {
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction != 0) {
    previous.sa_sigaction(signal_number, info, context);
    return;
  }
  if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
    /* Restore the default and return: the access faults again and the kernel ends the process,
       as it would have without us (an ignored SIGBUS from a fault cannot be ignored either). */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal_number, &fallback, 0);
    return;
  }
  previous.sa_handler(signal_number);
}

static void on_sigbus(int signal_number, siginfo_t *info, void *context) {
  int saved_errno = errno;
  uintptr_t address = (uintptr_t)info->si_addr;
  for (int32_t slot = 0; slot < GUARD_CAPACITY; slot++) {
    uintptr_t start = guard.start[slot];
    uintptr_t end = guard.end[slot];
    if (address < start || address >= end) continue;
    /* Everything from the faulting page on is past the file's end, so it is replaced in one go:
       one fault per broken mapping, however much of it is read afterwards. */
    uintptr_t page = address & page_mask;
    void *zeros = mmap((void *)page, end - page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (zeros == MAP_FAILED) break;
    guard.slot_faults[slot]++;
    atomic_increment(&guard.faults);
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  chain(signal_number, info, context);
}

/* Installs the handler (once); returns 0, or -1 with errno set. */
int guard_install(void) {
  if (guard.installed) return 0;
  long page_size = sysconf(_SC_PAGESIZE);
  page_mask = ~((uintptr_t)(page_size > 0 ? page_size : 4096) - 1);
  guard.capacity = GUARD_CAPACITY;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_sigbus;
  /* SA_ONSTACK: run on the alternate stack if the thread has one (a fault on a full stack). */
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGBUS, &action, &previous) != 0) return -1;
  guard.installed = 1;
  return 0;
}

/* Where the next claim starts looking: just past the last slot claimed. A hint only, so races on
   it cost a longer search, never a wrong answer. */
static volatile int32_t next_free;

/* Registers the mapping [start, start + length); returns its slot, or -1 if the table is full. */
int32_t guard_claim(uintptr_t start, uintptr_t length) {
  if (start == 0 || length == 0) return -1;
  int32_t first = next_free;
  for (int32_t k = 0; k < GUARD_CAPACITY; k++) {
    int32_t slot = (first + k) % GUARD_CAPACITY;
    if (guard.start[slot] != 0 || !compare_and_swap(&guard.start[slot], 0, start)) continue;
    /* end is still 0, so no handler matches the slot until it is whole. */
    guard.slot_faults[slot] = 0;
    guard.end[slot] = start + length;
    next_free = (slot + 1) % GUARD_CAPACITY;
    return slot;
  }
  return -1;
}

/* Forgets a slot's mapping (before it is unmapped). */
void guard_release(int32_t slot) {
  if (slot < 0 || slot >= GUARD_CAPACITY) return;
  guard.end[slot] = 0; /* first, so the slot stops matching before start is reused */
  guard.start[slot] = 0;
}

void *guard_table(void) { return (void *)&guard; }

/* Byte offsets of the fields JavaScript reads, to check the layout it assumes. */
int64_t guard_layout(int32_t field) {
  switch (field) {
    case 0: return (int64_t)((char *)&guard.faults - (char *)&guard);
    case 1: return (int64_t)((char *)&guard.slot_faults[0] - (char *)&guard);
    case 2: return (int64_t)sizeof guard;
    default: return -1;
  }
}

/* Addresses of the functions, for threads that call them through CFunction. */
void *guard_function(int32_t which) {
  switch (which) {
    case 0: return (void *)guard_claim;
    case 1: return (void *)guard_release;
    default: return 0;
  }
}
