//! The four-pass Feistel network of draft-21 §5.4.2 ("General Case"), for any plaintext
//! length 5..=19, odd lengths included.
//!
//! The XDP program runs this same code, so it is written for the BPF verifier: fixed-size
//! arrays, loops with constant bounds, and no branch on the lengths inside the passes. Each
//! branch on an unknown value doubles the paths the verifier walks (BPF has no conditional
//! move), so lengths act through bit masks computed once instead. The masks also keep every
//! octet outside a half, and the cleared nibbles of an odd length, at zero throughout, which
//! lets `expand` take a whole half and `merge` OR the halves together. A half is a `u128`:
//! two registers instead of ten octets to spill.

use super::{BLOCK_LEN, BlockCipher, MAX_PLAINTEXT_LEN, PlaintextBuf};

/// The bits of the left and right halves for each plaintext length: the `half_len` most
/// significant octets; with an odd length, minus the low nibble of left's last octet and the
/// high nibble of right's first. A table, so that the passes need no branch on the length.
static HALF_MASKS: [[u128; 2]; MAX_PLAINTEXT_LEN + 1] = {
    let mut masks = [[0u128; 2]; MAX_PLAINTEXT_LEN + 1];
    let mut len = 0;
    while len <= MAX_PLAINTEXT_LEN {
        let half_len = len.div_ceil(2);
        let used = if half_len == 0 {
            0
        } else {
            !(u128::MAX >> (8 * half_len))
        };
        let (mut left, mut right) = (used, used);
        if len % 2 == 1 {
            left &= !(0x0f << (8 * (BLOCK_LEN - half_len)));
            right &= !(0xf0 << (8 * (BLOCK_LEN - 1)));
        }
        masks[len] = [left, right];
        len += 1;
    }
    masks
};

/// The plaintext or ciphertext split into `left` and `right` halves of `half_len` octets,
/// each held in the most significant octets of a `u128`, where `expand` places it. With an
/// odd length the middle octet is split: `left` keeps its high nibble, `right` its low nibble.
/// `*_mask` has ones in the bits that each half uses; every other bit stays zero.
struct Halves {
    left: u128,
    right: u128,
    left_mask: u128,
    right_mask: u128,
    len: usize,
}

impl Halves {
    #[inline(always)]
    fn split(data: &PlaintextBuf, len: usize) -> Self {
        let len = if len > MAX_PLAINTEXT_LEN {
            MAX_PLAINTEXT_LEN
        } else {
            len
        };
        let [left_mask, right_mask] = HALF_MASKS[len];
        Self {
            left: head(data) & left_mask,
            // The right half is the last `half_len` octets: it starts at `len / 2`.
            right: window(data, len / 2) & right_mask,
            left_mask,
            right_mask,
            len,
        }
    }

    /// `right ^= truncate(AES(expand(len, pass, left)))`.
    #[inline(always)]
    fn mix_right<C: BlockCipher>(&mut self, cipher: &C, pass: u8) {
        self.right ^= self.pad(cipher, pass, self.left) & self.right_mask;
    }

    /// `left ^= truncate(AES(expand(len, pass, right)))`.
    #[inline(always)]
    fn mix_left<C: BlockCipher>(&mut self, cipher: &C, pass: u8) {
        self.left ^= self.pad(cipher, pass, self.right) & self.left_mask;
    }

    /// Passes 4, 3 and 2 backwards: from (left_2, right_2) to (left_0, right_1).
    #[inline(always)]
    fn unmix_to_left_0<C: BlockCipher>(&mut self, cipher: &C) {
        self.mix_left(cipher, 4);
        self.mix_right(cipher, 3);
        self.mix_left(cipher, 2);
    }

    /// `AES_ECB(key, expand(len, pass, half))`: the half in the most significant octets,
    /// zeros, the plaintext length and the pass number as the last two octets.
    #[inline(always)]
    fn pad<C: BlockCipher>(&self, cipher: &C, pass: u8, half: u128) -> u128 {
        let mut block = (half | (self.len as u128) << 8 | u128::from(pass)).to_be_bytes();
        cipher.encrypt_block(&mut block);
        u128::from_be_bytes(block)
    }

    /// The first 16 octets of the joined halves: left from the start, right from `len / 2`;
    /// with an odd length they share the middle octet, whose other nibble each keeps at zero.
    #[inline(always)]
    fn merge_head(&self) -> u128 {
        self.left | shr_octets(self.right, self.len / 2)
    }

    /// All of the joined halves.
    #[inline(always)]
    fn merge(&self) -> PlaintextBuf {
        let mut out = [0u8; MAX_PLAINTEXT_LEN];
        out[..BLOCK_LEN].copy_from_slice(&self.merge_head().to_be_bytes());
        // What of the right half lies past the 16th octet.
        let tail = shl_octets(self.right, BLOCK_LEN - self.len / 2);
        out[BLOCK_LEN..].copy_from_slice(&tail.to_be_bytes()[..MAX_PLAINTEXT_LEN - BLOCK_LEN]);
        out
    }
}

/// The first 16 octets of `data`, as a big-endian `u128`.
#[inline(always)]
fn head(data: &PlaintextBuf) -> u128 {
    let mut head = [0u8; BLOCK_LEN];
    head.copy_from_slice(&data[..BLOCK_LEN]);
    u128::from_be_bytes(head)
}

/// The 16 octets of `data` from `start` (0..=9) on, as a big-endian `u128`; octets past the
/// buffer read as zero. Shifts instead of indexing at a variable offset, which LLVM may turn
/// into an OR on a stack pointer that the verifier rejects.
#[inline(always)]
fn window(data: &PlaintextBuf, start: usize) -> u128 {
    let mut tail = [0u8; BLOCK_LEN];
    tail[..MAX_PLAINTEXT_LEN - BLOCK_LEN].copy_from_slice(&data[BLOCK_LEN..]);
    shl_octets(head(data), start) | shr_octets(u128::from_be_bytes(tail), BLOCK_LEN - start)
}

// Shifts by whole octets (0..=15) on two 64-bit lanes. A variable u128 shift would be a call
// to `__ashlti3`/`__lshrti3`, which the BPF target does not have, and a branch on the amount
// would double the verifier's paths: the lane swap for 8 octets or more is done with a mask,
// and each lane shift stays below 64 bits (`x >> 1 >> (63 - t)` is `x >> (64 - t)`, and 0
// when `t` is 0).

#[inline(always)]
fn lanes(x: u128, octets: usize) -> (u64, u64, u64, u32) {
    let whole_word = 0u64.wrapping_sub(((octets >> 3) & 1) as u64);
    (
        (x >> 64) as u64,
        x as u64,
        whole_word,
        8 * (octets & 7) as u32,
    )
}

/// `x << (8 * octets)`.
#[inline(always)]
pub(crate) fn shl_octets(x: u128, octets: usize) -> u128 {
    let (hi, lo, whole_word, t) = lanes(x, octets);
    let (hi, lo) = ((hi & !whole_word) | (lo & whole_word), lo & !whole_word);
    let hi = (hi << t) | (lo >> 1 >> (63 - t));
    (u128::from(hi) << 64) | u128::from(lo << t)
}

/// `x >> (8 * octets)`.
#[inline(always)]
pub(crate) fn shr_octets(x: u128, octets: usize) -> u128 {
    let (hi, lo, whole_word, t) = lanes(x, octets);
    let (hi, lo) = (hi & !whole_word, (lo & !whole_word) | (hi & whole_word));
    let lo = (lo >> t) | (hi << 1 << (63 - t));
    (u128::from(hi >> t) << 64) | u128::from(lo)
}

/// Encrypts the first `len` octets of `data` (server ID || nonce, 5..=19 octets).
pub(crate) fn encrypt<C: BlockCipher>(cipher: &C, data: &PlaintextBuf, len: usize) -> PlaintextBuf {
    let mut halves = Halves::split(data, len);
    halves.mix_right(cipher, 1);
    halves.mix_left(cipher, 2);
    halves.mix_right(cipher, 3);
    halves.mix_left(cipher, 4);
    halves.merge()
}

/// Decrypts the first `len` octets of `data` with all four passes.
pub(crate) fn decrypt<C: BlockCipher>(cipher: &C, data: &PlaintextBuf, len: usize) -> PlaintextBuf {
    let mut halves = Halves::split(data, len);
    halves.unmix_to_left_0(cipher);
    halves.mix_right(cipher, 1);
    halves.merge()
}

/// Decrypts enough of `ciphertext` (its first `len` octets) to recover the server ID, which
/// is in the most significant `server_id_len` octets of the result (the plaintext's first
/// 16). Stops after three passes when the server ID lies wholly in left_0, as draft-21 allows
/// (server ID no longer than half the plaintext, rounded down); the rest of the result is
/// then not the nonce.
#[inline(always)]
pub(crate) fn decrypt_server_id<C: BlockCipher>(
    cipher: &C,
    ciphertext: &PlaintextBuf,
    len: usize,
    server_id_len: usize,
) -> u128 {
    let mut halves = Halves::split(ciphertext, len);
    halves.unmix_to_left_0(cipher);
    if server_id_len > len / 2 {
        halves.mix_right(cipher, 1);
    }
    halves.merge_head()
}
