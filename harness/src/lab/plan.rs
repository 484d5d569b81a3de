//! The plan of trials: which trial indices this invocation runs — all of them, one shard of them
//! (`--partition K/N`), or what a resumed run still lacks.

use std::collections::BTreeSet;

use crate::config::Partition;

/// The indices to run, in order, skipping those already done.
pub fn indices(
    total: Option<u64>,
    partition: Option<Partition>,
    done: BTreeSet<u64>,
) -> impl Iterator<Item = u64> {
    let range = match (total, partition) {
        (Some(t), Some(p)) => p.range(t),
        (Some(t), None) => 0..t,
        (None, _) => 0..u64::MAX,
    };
    range.filter(move |i| !done.contains(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_their_union_is_the_whole_run() {
        // A property over many totals and shard counts, exhaustively for small sizes.
        for total in 0..60u64 {
            for n in 1..=9u64 {
                let mut seen = vec![0u32; total as usize];
                for k in 1..=n {
                    for i in indices(Some(total), Some(Partition { k, n }), BTreeSet::new()) {
                        seen[i as usize] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "total {total}, n {n}: {seen:?}"
                );
            }
        }
        // And for a large total, only the boundaries matter.
        let total = 10_000_019u64;
        let mut next = 0;
        for k in 1..=7 {
            let r = Partition { k, n: 7 }.range(total);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, total);
    }

    #[test]
    fn done_trials_are_skipped() {
        let done = BTreeSet::from([0, 2, 3]);
        let left: Vec<u64> = indices(Some(6), None, done).collect();
        assert_eq!(left, vec![1, 4, 5]);
    }

    #[test]
    fn bad_partitions_name_the_fix() {
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", ""] {
            assert!(Partition::parse(bad).unwrap_err().contains("K/N"), "{bad}");
        }
        assert_eq!(Partition::parse("2/4").unwrap(), Partition { k: 2, n: 4 });
    }
}
