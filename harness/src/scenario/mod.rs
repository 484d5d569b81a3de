//! `torture scenario`: the postmortems as named scenarios (pools, many writers, WAL-init races, backups, operator "fixes", checkpoints, shutdown, known corruptors), on the core trial engine.
