#!/usr/bin/env python3
"""SIGTERM while the coordinator's two writers are busy: it exits 0, and
every record it took from the bus is in PostgreSQL or in the spool, which
the next start writes back - none lost, none twice.

Under load a batch often goes to whichever writer is free, so batches change
hands between the writers; a stop that freed batches by their first owner
wrote a freed batch and crashed (SIGSEGV, leaving PostgreSQL running). Three
rounds, each stopped in full flow.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

ROUNDS = 3


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    co, received = None, 0
    try:
        for rnd in range(ROUNDS):
            co = Coordinator(d, reuse=co)
            base = co.stats()["records_written"]
            # Flows of its own per round (--id-base) so a record written twice shows.
            g = subprocess.Popen([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(),
                                  "--records", "1000000", "--node", f"load{rnd}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                h.check(h.wait_for(lambda: co.stats()["records_written"] - base >= 50000, 120),
                        f"round {rnd}: records did not flow: {co.stats()}")
                co.proc.send_signal(signal.SIGTERM)
                rc = co.proc.wait(120)
            finally:
                g.kill()
                g.wait()
            h.check(rc == 0, f"round {rnd}: coordinator exit status {rc} on SIGTERM under load\n"
                             f"{co.log_text()[-3000:]}")
            st = co.stats()
            h.check(st["records_dropped"] == 0, f"round {rnd}: records dropped: {st}")
            received += st["records_received"]
            print(f"ok  round {rnd}: exit 0 after {st['records_received']} records "
                  f"({st['records_spooled']} left in the spool)")
        co = Coordinator(d, reuse=co)
        h.check(h.wait_for(lambda: co.stats()["records_spooled"] == 0, 120),
                f"the spool was not written back: {co.stats()}")
        rows, distinct = map(int, co.sql("SELECT count(*), count(DISTINCT (node, flow_id)) "
                                         "FROM flows_all")[0])
        h.check(rows == received and distinct == received,
                f"{rows} rows ({distinct} distinct) for {received} records received")
        print(f"ok  {received} records received over {ROUNDS} stops: each in PostgreSQL once")
        h.check(co.stop() == 0, "coordinator exit status")
    finally:
        if co:
            co.stop()


if __name__ == "__main__":
    main()
