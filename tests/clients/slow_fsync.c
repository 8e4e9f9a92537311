/* slow_fsync.c: the fault-injection harness's slow disk (scripts/chaos, fault `slow-fsync`).
 *
 * An LD_PRELOAD shim, compiled by the harness with `cc -shared -fPIC` and loaded into a
 * `strom server` process only by the harness: nothing in Strom's code knows about it. It
 * interposes glibc's fsync, fdatasync, syncfs and sync_file_range (what Rust's
 * File::sync_all / sync_data and the libc crate call) and, before calling the real function,
 * sleeps for the number of milliseconds in the file named by STROM_CHAOS_FSYNC_DELAY_FILE
 * (read on every call, so the harness switches a node's stall on and off while it runs by
 * rewriting that file; missing, empty, unreadable or 0: no stall; capped at 10 minutes).
 * The real call then runs: the data is synced as before, only later, as on a disk whose
 * flushes stall (a saturated or failing device, a throttled cloud volume).
 *
 * Each stalled call writes one line to stderr (the node's log) so a run shows the fault
 * took effect: "slow-fsync: fsync(fd 12 /path/of/the/file) stalled 2000 ms". errno is preserved.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_DELAY_MS 600000L

static char control_path[4096];

__attribute__((constructor)) static void slow_fsync_init(void) {
    const char *p = getenv("STROM_CHAOS_FSYNC_DELAY_FILE");
    if (p != NULL && strlen(p) < sizeof control_path) {
        strcpy(control_path, p);
    }
}

static long delay_ms(void) {
    if (control_path[0] == '\0') {
        return 0;
    }
    int fd = open(control_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    long ms = strtol(buf, NULL, 10);
    if (ms <= 0) {
        return 0;
    }
    return ms > MAX_DELAY_MS ? MAX_DELAY_MS : ms;
}

static void stall(const char *what, int fd) {
    int saved = errno;
    long ms = delay_ms();
    if (ms > 0) {
        struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&left, &left) == -1 && errno == EINTR) {
        }
        /* The file, for the log: /proc/self/fd/<fd> names it (cut to fit). */
        char link[64], target[256];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t tn = readlink(link, target, sizeof target - 1);
        target[tn > 0 ? tn : 0] = '\0';
        char line[400];
        int len = snprintf(line, sizeof line, "slow-fsync: %s(fd %d %s) stalled %ld ms\n", what, fd, target, ms);
        if (len > 0) {
            ssize_t ignored = write(2, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
            (void)ignored;
        }
    }
    errno = saved;
}

/* The real function, looked up once; a lookup that fails leaves ENOSYS (never a crash). */
typedef int (*fd_fn)(int);
typedef int (*range_fn)(int, off_t, off_t, unsigned int);

static void *real(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        errno = ENOSYS;
    }
    return f;
}

int fsync(int fd) {
    static fd_fn f;
    if (f == NULL && (f = (fd_fn)real("fsync")) == NULL) {
        return -1;
    }
    stall("fsync", fd);
    return f(fd);
}

int fdatasync(int fd) {
    static fd_fn f;
    if (f == NULL && (f = (fd_fn)real("fdatasync")) == NULL) {
        return -1;
    }
    stall("fdatasync", fd);
    return f(fd);
}

int syncfs(int fd) {
    static fd_fn f;
    if (f == NULL && (f = (fd_fn)real("syncfs")) == NULL) {
        return -1;
    }
    stall("syncfs", fd);
    return f(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    static range_fn f;
    if (f == NULL && (f = (range_fn)real("sync_file_range")) == NULL) {
        return -1;
    }
    stall("sync_file_range", fd);
    return f(fd, offset, nbytes, flags);
}
