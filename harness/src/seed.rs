//! Seeds: one master seed per run; each trial's seed is derived from (master seed, trial index) alone,
//! never from a shared stream, so any trial or shard replays by itself.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a bijection that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of trial `index` of a run seeded with `master`.
pub fn trial_seed(master: u64, index: u64) -> u64 {
    mix(mix(master) ^ mix(index.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// An RNG for one purpose (`stream`) inside one trial: the kill point, writer 0, writer 1, …
pub fn rng_for(trial_seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(trial_seed);
    rng.set_stream(stream);
    rng
}

/// The stream of the kill-point draw; writers use `WRITER_STREAM_BASE + writer`.
pub const KILL_STREAM: u64 = 0;
pub const WRITER_STREAM_BASE: u64 = 1000;
/// Streams of op-indexed faults: the operation drawn, then what the fault does there.
pub const FAULT_STREAM: u64 = 10;

/// A master seed for a run that was not given one.
pub fn fresh_master_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Keep it short enough to type back in.
    mix(nanos ^ u64::from(std::process::id()) << 32) % 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_trial_seed_depends_only_on_master_and_index() {
        assert_eq!(trial_seed(7, 3), trial_seed(7, 3));
        assert_ne!(trial_seed(7, 3), trial_seed(7, 4));
        assert_ne!(trial_seed(7, 3), trial_seed(8, 3));
        let mut a = rng_for(trial_seed(7, 3), KILL_STREAM);
        let mut b = rng_for(trial_seed(7, 3), KILL_STREAM);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut w = rng_for(trial_seed(7, 3), WRITER_STREAM_BASE);
        assert_ne!(
            rng_for(trial_seed(7, 3), KILL_STREAM).next_u64(),
            w.next_u64()
        );
    }
}
