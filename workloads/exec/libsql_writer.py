#!/usr/bin/env python3
"""python_writer.py on libSQL (Turso's SQLite fork) through the `libsql` package from PyPI, optionally
encrypted, for `torture exec --engine libsql` — the way the postmortem's app
("EncryptedLibSQLConnection") reached its database. Same schema, transactions and `ack N` protocol,
so the same `--recovered-sql` and `verify.sql` check it; every python_writer.py option works.

    pip install libsql
    torture exec --engine libsql --recovered-sql 'SELECT max(seq) FROM t' \
        --verify-sql "$(cat workloads/exec/verify.sql)" -- python3 workloads/exec/libsql_writer.py {db}
    # encrypted: the lab passes --key to the program as TORTURE_KEY and checks with it
    torture exec --engine libsql --key s3cret ... -- python3 workloads/exec/libsql_writer.py {db}
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_writer  # noqa: E402

if __name__ == "__main__":
    python_writer.main(["--driver", "libsql"] + sys.argv[1:])
