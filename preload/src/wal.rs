//! What SQLite's recovery reads of a `-wal` file: the header and the frames up to the last valid
//! commit frame (https://www.sqlite.org/fileformat2.html#walformat). Two WAL files with the same
//! such prefix recover to the same database (with the same main database file): the bytes past it —
//! a torn frame, a frame of an old generation (other salts), frames after the last commit — are
//! never read. Used to give a crash state an *effective* key, so that a state whose recovery is
//! another's is not opened twice.

/// The size of the WAL header and of a frame's header.
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
/// `WAL_MAX_VERSION` in SQLite's `wal.c`.
const WAL_VERSION: u32 = 3_007_000;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's `walChecksumBytes`: two running sums over 32-bit words (big-endian words when the
/// header's magic says so, else little-endian), seeded with the previous checksum.
fn checksum(big_endian: bool, data: &[u8], seed: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    for pair in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (
                u32::from_be_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_be_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s0 = s0.wrapping_add(x0).wrapping_add(s1);
        s1 = s1.wrapping_add(x1).wrapping_add(s0);
    }
    (s0, s1)
}

/// What recovery makes of a WAL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRecovery {
    /// The bytes recovery reads and uses: the header and every frame up to the last valid commit
    /// frame. A file shorter than a header, or one whose header is not valid, has 0 frames and
    /// keeps its first (up to 32) bytes here: SQLite ignores such a file, and keying on the bytes
    /// it ignores only tells more states apart, never fewer.
    pub prefix: usize,
    /// Frames recovery uses (`mxFrame`).
    pub frames: u32,
}

/// The prefix of `wal` that SQLite's `walIndexRecover` uses: header valid (magic, page size, the
/// header's checksum; a wrong version is kept in the prefix, SQLite refuses it), then frames while
/// each has a non-zero page number, the header's salts and a valid cumulative checksum; the last
/// commit frame among those (a frame whose "database size after commit" is non-zero) ends it.
pub fn recovered_prefix(wal: &[u8]) -> WalRecovery {
    let ignored = WalRecovery {
        prefix: wal.len().min(WAL_HEADER),
        frames: 0,
    };
    if wal.len() < WAL_HEADER {
        return ignored;
    }
    let magic = be32(wal, 0);
    let page = be32(wal, 8) as usize;
    if magic & 0xFFFF_FFFE != 0x377F_0682
        || !page.is_power_of_two()
        || !(512..=65536).contains(&page)
    {
        return ignored;
    }
    let big_endian = magic & 1 == 1;
    let header_sum = checksum(big_endian, &wal[..24], (0, 0));
    if header_sum != (be32(wal, 24), be32(wal, 28)) {
        return ignored;
    }
    if be32(wal, 4) != WAL_VERSION {
        // SQLite fails the open (SQLITE_CANTOPEN) on this header when the file is longer than it
        // (at exactly 32 bytes it reads no header at all and opens): whether there is a 33rd byte
        // is part of the key, the frames are not.
        return WalRecovery {
            prefix: wal.len().min(WAL_HEADER + 1),
            frames: 0,
        };
    }
    let salts = (be32(wal, 16), be32(wal, 20));
    let frame = FRAME_HEADER + page;
    let mut sum = header_sum;
    let mut at = WAL_HEADER;
    let mut n = 0u32;
    let mut used = WalRecovery {
        prefix: WAL_HEADER,
        frames: 0,
    };
    while at + frame <= wal.len() {
        let f = &wal[at..at + frame];
        n += 1;
        if be32(f, 0) == 0 || (be32(f, 8), be32(f, 12)) != salts {
            break;
        }
        sum = checksum(big_endian, &f[..8], sum);
        sum = checksum(big_endian, &f[FRAME_HEADER..], sum);
        if sum != (be32(f, 16), be32(f, 20)) {
            break;
        }
        at += frame;
        if be32(f, 4) != 0 {
            used = WalRecovery {
                prefix: at,
                frames: n,
            };
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 512;

    /// A WAL as SQLite writes it: a header with `salts`, then frames (page number, commit size).
    struct Wal {
        bytes: Vec<u8>,
        sum: (u32, u32),
        salts: (u32, u32),
    }

    impl Wal {
        fn new(salts: (u32, u32)) -> Wal {
            let mut h = Vec::new();
            for w in [
                0x377F_0682u32,
                WAL_VERSION,
                PAGE as u32,
                0,
                salts.0,
                salts.1,
            ] {
                h.extend_from_slice(&w.to_be_bytes());
            }
            let sum = checksum(false, &h, (0, 0));
            h.extend_from_slice(&sum.0.to_be_bytes());
            h.extend_from_slice(&sum.1.to_be_bytes());
            Wal {
                bytes: h,
                sum,
                salts,
            }
        }

        fn frame(&mut self, page: u32, commit: u32, fill: u8) -> &mut Wal {
            let mut f = Vec::new();
            for w in [page, commit, self.salts.0, self.salts.1] {
                f.extend_from_slice(&w.to_be_bytes());
            }
            let body = vec![fill; PAGE];
            self.sum = checksum(false, &f[..8], self.sum);
            self.sum = checksum(false, &body, self.sum);
            f.extend_from_slice(&self.sum.0.to_be_bytes());
            f.extend_from_slice(&self.sum.1.to_be_bytes());
            f.extend_from_slice(&body);
            self.bytes.extend_from_slice(&f);
            self
        }
    }

    const FRAME: usize = FRAME_HEADER + PAGE;

    fn used(frames: u32) -> WalRecovery {
        WalRecovery {
            prefix: WAL_HEADER + frames as usize * FRAME,
            frames,
        }
    }

    /// A header of another version: SQLite refuses the file when it is longer than the header
    /// and ignores it at exactly 32 bytes, so the two differ in their key; frames past that do not.
    #[test]
    fn a_wrong_version_keys_whether_the_file_is_longer_than_its_header() {
        let mut h = Vec::new();
        for w in [0x377F_0682u32, 3_007_001, PAGE as u32, 0, 1, 2] {
            h.extend_from_slice(&w.to_be_bytes());
        }
        let sum = checksum(false, &h, (0, 0));
        h.extend_from_slice(&sum.0.to_be_bytes());
        h.extend_from_slice(&sum.1.to_be_bytes());
        assert_eq!(recovered_prefix(&h).prefix, WAL_HEADER);
        let mut longer = h.clone();
        longer.extend_from_slice(&[9; 700]);
        assert_eq!(recovered_prefix(&longer).prefix, WAL_HEADER + 1);
        assert_eq!(recovered_prefix(&longer).frames, 0);
    }

    #[test]
    fn every_frame_up_to_the_last_commit_counts() {
        let mut w = Wal::new((1, 2));
        w.frame(2, 0, 7)
            .frame(3, 3, 8)
            .frame(2, 0, 9)
            .frame(4, 4, 1);
        assert_eq!(recovered_prefix(&w.bytes), used(4));
    }

    #[test]
    fn frames_past_the_last_commit_do_not_count() {
        let mut w = Wal::new((1, 2));
        w.frame(2, 0, 7)
            .frame(3, 3, 8)
            .frame(2, 0, 9)
            .frame(5, 0, 1);
        assert_eq!(recovered_prefix(&w.bytes), used(2));
    }

    #[test]
    fn a_torn_last_frame_ends_the_wal_at_the_commit_before_it() {
        let mut w = Wal::new((1, 2));
        w.frame(2, 2, 7).frame(3, 3, 8);
        let whole = w.bytes.clone();
        // Half the last frame on disk: shorter than a frame, never read.
        let torn = &whole[..whole.len() - PAGE / 2];
        assert_eq!(recovered_prefix(torn), used(1));
        // Its full length, but its second half of old bytes (zeros): a checksum mismatch.
        let mut stale = whole.clone();
        let n = stale.len();
        stale[n - PAGE / 2..].fill(0);
        assert_eq!(recovered_prefix(&stale), used(1));
        // The negative control: the whole frame counts.
        assert_eq!(recovered_prefix(&whole), used(2));
    }

    #[test]
    fn a_bad_checksum_mid_wal_ends_it_there_even_before_valid_looking_frames() {
        let mut w = Wal::new((1, 2));
        w.frame(2, 2, 7)
            .frame(3, 3, 8)
            .frame(4, 4, 9)
            .frame(5, 5, 1);
        // One flipped byte in frame 2's page: frames 2, 3 and 4 are not used (the chain is broken,
        // although frames 3 and 4 carry checksums that chain from the intended bytes).
        let at = WAL_HEADER + FRAME + FRAME_HEADER + 100;
        w.bytes[at] ^= 1;
        assert_eq!(recovered_prefix(&w.bytes), used(1));
    }

    #[test]
    fn frames_of_an_older_generation_after_a_reset_do_not_count() {
        // The old WAL: four frames with salts (1, 2). A reset rewrites the header with new salts
        // and overwrites frame 1 only: frames 2..4 are still on disk, with the old salts.
        let mut old = Wal::new((1, 2));
        old.frame(2, 2, 7)
            .frame(3, 3, 8)
            .frame(4, 4, 9)
            .frame(5, 5, 1);
        let mut new = Wal::new((10, 20));
        new.frame(6, 6, 3);
        let mut bytes = old.bytes.clone();
        bytes[..new.bytes.len()].copy_from_slice(&new.bytes);
        assert_eq!(recovered_prefix(&bytes), used(1));
        // The new header alone on disk (no frame of the new generation yet): no old frame counts.
        let mut header_only = old.bytes.clone();
        header_only[..WAL_HEADER].copy_from_slice(&new.bytes[..WAL_HEADER]);
        assert_eq!(recovered_prefix(&header_only), used(0));
    }

    #[test]
    fn a_wal_without_a_valid_header_is_ignored_whole() {
        let mut w = Wal::new((1, 2));
        w.frame(2, 2, 7);
        assert_eq!(recovered_prefix(&w.bytes[..20]).frames, 0);
        let mut bad = w.bytes.clone();
        bad[25] ^= 1; // the header's checksum
        assert_eq!(
            recovered_prefix(&bad),
            WalRecovery {
                prefix: 32,
                frames: 0
            }
        );
        let mut magic = w.bytes.clone();
        magic[0] = 0;
        assert_eq!(recovered_prefix(&magic).frames, 0);
        assert_eq!(
            recovered_prefix(&[]),
            WalRecovery {
                prefix: 0,
                frames: 0
            }
        );
    }

    #[test]
    fn big_endian_checksums_are_read_as_such() {
        // Magic 0x377f0683: the sums are over big-endian words. Built by hand.
        let mut h = Vec::new();
        for w in [0x377F_0683u32, WAL_VERSION, PAGE as u32, 0, 5, 6] {
            h.extend_from_slice(&w.to_be_bytes());
        }
        let mut sum = checksum(true, &h, (0, 0));
        h.extend_from_slice(&sum.0.to_be_bytes());
        h.extend_from_slice(&sum.1.to_be_bytes());
        let mut f = Vec::new();
        for w in [2u32, 2, 5, 6] {
            f.extend_from_slice(&w.to_be_bytes());
        }
        let body: Vec<u8> = (0..PAGE).map(|i| i as u8).collect();
        sum = checksum(true, &f[..8], sum);
        sum = checksum(true, &body, sum);
        f.extend_from_slice(&sum.0.to_be_bytes());
        f.extend_from_slice(&sum.1.to_be_bytes());
        f.extend_from_slice(&body);
        h.extend_from_slice(&f);
        assert_eq!(recovered_prefix(&h), used(1));
        // Read as little-endian, the header's checksum fails.
        h[3] = 0x82;
        assert_eq!(recovered_prefix(&h).frames, 0);
    }
}
