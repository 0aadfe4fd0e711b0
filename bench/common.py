"""Shared helpers for benchmarks: timing whole processes, medians, tables.
Benchmarks print figures beside a baseline measured in the same run; they
never pass or fail on speed."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import harness as h  # noqa: E402

BENCH_DIR = os.environ.get("MSCOPE_BENCH_DIR", "/var/tmp/mscope-bench")


def timed(cmd, **kw):
    """Wall-clock seconds of one whole process (start-up included)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=kw.pop("stdout", subprocess.DEVNULL),
                       stderr=kw.pop("stderr", subprocess.PIPE), **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        h.fail(f"{' '.join(map(str, cmd))} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return dt


def measured(cmd, stderr_text=None):
    """(wall seconds, CPU seconds user + system, peak RSS KiB) of one whole
    process. CPU time is what a busy shared machine distorts least. With a
    list as stderr_text, the process's standard error is appended to it."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
        if status != 0:
            h.fail(f"{' '.join(map(str, cmd))} exited with {status}: {text[-2000:]}")
        if stderr_text is not None:
            stderr_text.append(text)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def median_measured(cmd, runs=5):
    """Medians of wall and CPU seconds over runs (see measured)."""
    res = [measured(cmd) for _ in range(runs)]
    return statistics.median(r[0] for r in res), statistics.median(r[1] for r in res)


def median_time(cmd, runs=5, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        times.append(timed(cmd))
    return statistics.median(times)


def warm(path):
    """Put path in the page cache as a file read from the disk is, whatever
    wrote it: written (flushed), dropped, read back. A file just written by
    small write()s (pcapgen's) stays cached in 4 KiB folios, one read back
    by readahead is in large ones, and reading the 1 M-packet capture from
    4 KiB folios took ~30% more CPU (docs/BENCHMARKS.md, 2026-12-05): the
    same input would be slower in the session that generated it."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while f.read(1 << 24):
            pass


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, kernel {os.uname().release}"


def ingest_input():
    """The 1 M-packet mixed capture the ingest and analysis benchmarks share,
    generated once, in the page cache. Returns (path, bytes, packets)."""
    os.makedirs(BENCH_DIR, exist_ok=True)
    src = os.path.join(BENCH_DIR, "ingest-1m.pcap")
    if not os.path.exists(src):
        h.gen(src, "--packets", 1000000, "--flows", 20000, "--seed", 21, "--nsec")
    warm(src)
    return src, os.path.getsize(src), 1000000


def remover(*paths):
    """A `before` hook for median_time(): start every run from nothing."""
    def clean():
        for p in paths:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.exists(p):
                os.unlink(p)
    return clean
