//! SigV4's payload hashes (the SHA-256 of each request body) of a flush's batches, computed
//! side by side. One SHA-256 is a chain of dependent rounds: with x86's SHA extensions it runs
//! at the round instruction's latency (0.55 s per GB on one core of `make bench`'s machine) and
//! leaves most of the instruction's throughput unused. The bodies of one flush are independent
//! (a 2 MB chunk makes two or three), so up to four are hashed at once, their rounds
//! interleaved: 0.31 s per GB two at a time, 0.30 three (`make bench`). Without those
//! extensions, or on other CPUs (aarch64 included), one after the other with `sha2`.

use std::borrow::Cow;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// How many bodies are hashed side by side at most: more gain nothing once the round
/// instruction's throughput is full, and a flush rarely has more.
const LANES: usize = 4;

/// The SHA-256 initial state.
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The SHA-256 of each message, a message given as its parts in order (the same as hashing
/// their concatenation).
pub fn sha256_each<const P: usize>(messages: &[[&[u8]; P]]) -> Vec<Digest> {
    let mut digests = vec![[0u8; 32]; messages.len()];
    let mut queue = messages.iter().map(|parts| Lane::new(parts)).enumerate();
    let mut lanes: Vec<(usize, Lane<'_>)> = Vec::with_capacity(LANES);
    loop {
        while lanes.len() < LANES {
            let Some(next) = queue.next() else { break };
            lanes.push(next);
        }
        // every lane moves on by as many blocks as the shortest has left in its current run
        // (never 0: a lane's runs are never empty, and a lane is gone once its last is hashed)
        let Some(n) = lanes.iter().map(|(_, lane)| lane.ready().len()).min() else { break };
        debug_assert!(n > 0, "a lane with nothing to hash");
        let mut states: Vec<[u32; 8]> = lanes.iter().map(|(_, lane)| lane.state).collect();
        let blocks: Vec<&[[u8; 64]]> = lanes.iter().map(|(_, lane)| &lane.ready()[..n]).collect();
        compress_side_by_side(&mut states, &blocks);
        for ((_, lane), state) in lanes.iter_mut().zip(states) {
            lane.state = state;
            lane.advance(n);
        }
        lanes.retain(|(i, lane)| match lane.digest() {
            Some(digest) => {
                digests[*i] = digest;
                false
            }
            None => true,
        });
    }
    digests
}

/// One message being hashed: its blocks as runs (borrowed from the parts where a part has
/// whole blocks; copied where a block straddles two parts, and for the padding), where it is,
/// and its state.
struct Lane<'a> {
    runs: Vec<Cow<'a, [[u8; 64]]>>,
    run: usize,
    at: usize,
    state: [u32; 8],
}

impl<'a> Lane<'a> {
    fn new(parts: &[&'a [u8]]) -> Lane<'a> {
        let mut runs = Vec::new();
        let mut carry: Vec<u8> = Vec::with_capacity(128);
        for &part in parts {
            let mut part = part;
            if !carry.is_empty() {
                let take = (64 - carry.len()).min(part.len());
                let (into, rest) = part.split_at(take);
                carry.extend_from_slice(into);
                part = rest;
                if carry.len() < 64 {
                    continue;
                }
                runs.push(Cow::Owned(carry.as_chunks::<64>().0.to_vec()));
                carry.clear();
            }
            let (whole, rest) = part.as_chunks::<64>();
            if !whole.is_empty() {
                runs.push(Cow::Borrowed(whole));
            }
            carry.extend_from_slice(rest);
        }
        // the padding: 0x80, zeros, and the length in bits at the end of a block
        let bits = parts.iter().map(|p| p.len() as u64).sum::<u64>().wrapping_mul(8);
        carry.push(0x80);
        let padded = if carry.len() > 56 { 128 } else { 64 };
        carry.resize(padded, 0);
        carry[padded - 8..].copy_from_slice(&bits.to_be_bytes());
        runs.push(Cow::Owned(carry.as_chunks::<64>().0.to_vec()));
        Lane { runs, run: 0, at: 0, state: H0 }
    }

    /// The blocks of the current run not yet hashed.
    fn ready(&self) -> &[[u8; 64]] {
        self.runs.get(self.run).map_or(&[], |run| &run[self.at..])
    }

    fn advance(&mut self, n: usize) {
        self.at += n;
        if self.runs.get(self.run).is_some_and(|run| self.at == run.len()) {
            self.run += 1;
            self.at = 0;
        }
    }

    /// The digest, once every block is hashed.
    fn digest(&self) -> Option<Digest> {
        if self.run < self.runs.len() {
            return None;
        }
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        Some(digest)
    }
}

/// Hashes `blocks[i]` into `states[i]` for every lane (each the same number of blocks).
fn compress_side_by_side(states: &mut [[u32; 8]], blocks: &[&[[u8; 64]]]) {
    #[cfg(target_arch = "x86_64")]
    match (&mut *states, blocks) {
        ([a, b], &[x, y]) => return sha_ni::interleaved([a, b], [x, y]),
        ([a, b, c], &[x, y, z]) => return sha_ni::interleaved([a, b, c], [x, y, z]),
        ([a, b, c, d], &[w, x, y, z]) => return sha_ni::interleaved([a, b, c, d], [w, x, y, z]),
        _ => {}
    }
    for (state, blocks) in states.iter_mut().zip(blocks) {
        sha2::block_api::compress256(state, blocks);
    }
}

/// SHA-256 rounds of several messages interleaved, with x86's SHA extensions.
#[cfg(target_arch = "x86_64")]
mod sha_ni {
    use std::arch::x86_64::*;

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Whether this CPU has what `compress` is compiled for (detected once, then a load).
    pub fn available() -> bool {
        is_x86_feature_detected!("sha") && is_x86_feature_detected!("sse4.1") && is_x86_feature_detected!("ssse3")
    }

    /// `compress` for CPUs that have it, `sha2`'s one message at a time elsewhere.
    pub fn interleaved<const N: usize>(states: [&mut [u32; 8]; N], blocks: [&[[u8; 64]]; N]) {
        if available() {
            // SAFETY: `compress` needs the target features checked just above, and nothing else.
            #[allow(unsafe_code)]
            unsafe {
                compress(states, blocks)
            }
        } else {
            for (state, blocks) in states.into_iter().zip(blocks) {
                sha2::block_api::compress256(state, blocks);
            }
        }
    }

    /// The rounds of the N messages one step each in turn, so that while one waits on its
    /// previous round the others' run. Each lane's rounds are those of `sha2`'s backend for
    /// these extensions (Intel's reference order), written out: left as loops, the compiler
    /// keeps the message schedule in memory and gains nothing over one at a time.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn compress<const N: usize>(states: [&mut [u32; 8]; N], blocks: [&[[u8; 64]]; N]) {
        let bswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        // the state as the instructions want it: ABEF and CDGH
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for l in 0..N {
            let s = &*states[l];
            let cdab = _mm_set_epi32(s[2] as i32, s[3] as i32, s[0] as i32, s[1] as i32);
            let efgh = _mm_set_epi32(s[4] as i32, s[5] as i32, s[6] as i32, s[7] as i32);
            abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
        }
        // block `b` of every lane in turn
        #[allow(clippy::needless_range_loop)]
        for b in 0..blocks[0].len() {
            let (abef_save, cdgh_save) = (abef, cdgh);
            // the message schedule, four words a register: w[j] holds words 4g+j (mod 16)
            let mut w = [[_mm_setzero_si128(); N]; 4];
            for l in 0..N {
                let (words, _) = blocks[l][b].as_chunks::<16>();
                for (j, bytes) in words.iter().enumerate() {
                    let x = u128::from_le_bytes(*bytes);
                    w[j][l] = _mm_shuffle_epi8(_mm_set_epi64x((x >> 64) as i64, x as i64), bswap);
                }
            }
            // rounds 4g to 4g+3: `a` holds the words 16 back (replaced by the next four), `b`
            // 12 back, `c` 8 back, `d` 4 back
            macro_rules! rounds4 {
                ($g:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
                    let k = _mm_set_epi32(
                        K[4 * $g + 3] as i32,
                        K[4 * $g + 2] as i32,
                        K[4 * $g + 1] as i32,
                        K[4 * $g] as i32,
                    );
                    for l in 0..N {
                        if $g >= 4 {
                            let w7 = _mm_alignr_epi8(w[$d][l], w[$c][l], 4);
                            let next = _mm_add_epi32(_mm_sha256msg1_epu32(w[$a][l], w[$b][l]), w7);
                            w[$a][l] = _mm_sha256msg2_epu32(next, w[$d][l]);
                        }
                        let wk = _mm_add_epi32(w[$a][l], k);
                        cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
                        abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0E));
                    }
                };
            }
            rounds4!(0, 0, 1, 2, 3);
            rounds4!(1, 1, 2, 3, 0);
            rounds4!(2, 2, 3, 0, 1);
            rounds4!(3, 3, 0, 1, 2);
            rounds4!(4, 0, 1, 2, 3);
            rounds4!(5, 1, 2, 3, 0);
            rounds4!(6, 2, 3, 0, 1);
            rounds4!(7, 3, 0, 1, 2);
            rounds4!(8, 0, 1, 2, 3);
            rounds4!(9, 1, 2, 3, 0);
            rounds4!(10, 2, 3, 0, 1);
            rounds4!(11, 3, 0, 1, 2);
            rounds4!(12, 0, 1, 2, 3);
            rounds4!(13, 1, 2, 3, 0);
            rounds4!(14, 2, 3, 0, 1);
            rounds4!(15, 3, 0, 1, 2);
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], abef_save[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh_save[l]);
            }
        }
        for l in 0..N {
            let feba = _mm_shuffle_epi32(abef[l], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgfe = _mm_alignr_epi8(dchg, feba, 8);
            *states[l] = [
                _mm_extract_epi32(dcba, 0) as u32,
                _mm_extract_epi32(dcba, 1) as u32,
                _mm_extract_epi32(dcba, 2) as u32,
                _mm_extract_epi32(dcba, 3) as u32,
                _mm_extract_epi32(hgfe, 0) as u32,
                _mm_extract_epi32(hgfe, 1) as u32,
                _mm_extract_epi32(hgfe, 2) as u32,
                _mm_extract_epi32(hgfe, 3) as u32,
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    fn expected(parts: &[&[u8]; 3]) -> Digest {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// Bodies of every length around the block and padding edges, one to six at a time (so
    /// lanes start and finish at different blocks, and the queue refills them).
    #[test]
    fn each_digest_is_the_sha256_of_its_parts() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        let lens = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097];
        for (n, &a) in lens.iter().enumerate() {
            let messages: Vec<[&[u8]; 3]> = (0..=n % 6)
                .map(|i| {
                    let b = lens[(n + i) % lens.len()];
                    [&data[..a.min(70)], &data[100..100 + b], &data[..(a + b) % 3]]
                })
                .collect();
            let got = sha256_each(&messages);
            let want: Vec<Digest> = messages.iter().map(expected).collect();
            assert_eq!(got, want, "lens {a} and on");
        }
        assert!(sha256_each::<3>(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn any_bodies_hash_as_sha2_hashes_them(
            bodies in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..200), prop::collection::vec(any::<u8>(), 0..3000), 0..3usize),
                0..7,
            )
        ) {
            let messages: Vec<[&[u8]; 3]> =
                bodies.iter().map(|(head, events, tail)| [&head[..], &events[..], &b"]}"[..*tail]]).collect();
            let want: Vec<Digest> = messages.iter().map(expected).collect();
            prop_assert_eq!(sha256_each(&messages), want);
        }
    }
}
