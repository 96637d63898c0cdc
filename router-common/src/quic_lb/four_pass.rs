//! The four-pass Feistel network of draft-21 §5.4.2 ("General Case"), for any plaintext
//! length 5..=19, odd lengths included.
//!
//! The XDP program runs this same code, so it sticks to what the BPF target allows: fixed-size
//! arrays, loops with constant bounds, and `get` instead of indexing where an index is not
//! provably in bounds (a panic path would not pass the verifier).

use super::{BLOCK_LEN, BlockCipher, MAX_PLAINTEXT_LEN, PlaintextBuf};

/// Half of the longest plaintext (19 octets), rounded up.
const MAX_HALF_LEN: usize = MAX_PLAINTEXT_LEN.div_ceil(2);

/// The plaintext or ciphertext split into `left` and `right` halves of `half_len` octets.
/// With an odd length the middle octet is split: `left` keeps its high nibble, `right` its
/// low nibble, and the other nibble of each stays zero through every pass.
struct Halves {
    left: [u8; MAX_HALF_LEN],
    right: [u8; MAX_HALF_LEN],
    half_len: usize,
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
        let half_len = len.div_ceil(2);
        let mut halves = Self {
            left: [0; MAX_HALF_LEN],
            right: [0; MAX_HALF_LEN],
            half_len,
            len,
        };
        for i in 0..MAX_HALF_LEN {
            if i < half_len {
                halves.left[i] = data[i];
                if let Some(&byte) = data.get(len / 2 + i) {
                    halves.right[i] = byte;
                }
            }
        }
        halves.clear_left_nibble();
        halves.clear_right_nibble();
        halves
    }

    #[inline(always)]
    fn is_odd(&self) -> bool {
        self.len % 2 == 1
    }

    #[inline(always)]
    fn clear_left_nibble(&mut self) {
        if self.is_odd()
            && let Some(byte) = self.left.get_mut(self.half_len.wrapping_sub(1))
        {
            *byte &= 0xf0;
        }
    }

    #[inline(always)]
    fn clear_right_nibble(&mut self) {
        if self.is_odd() {
            self.right[0] &= 0x0f;
        }
    }

    /// `right ^= truncate(AES(expand(len, pass, left)))`, then clear its first nibble.
    #[inline(always)]
    fn mix_right<C: BlockCipher>(&mut self, cipher: &C, pass: u8) {
        let pad = self.pad(cipher, pass, &self.left);
        xor(&mut self.right, &pad, self.half_len);
        self.clear_right_nibble();
    }

    /// `left ^= truncate(AES(expand(len, pass, right)))`, then clear its last nibble.
    #[inline(always)]
    fn mix_left<C: BlockCipher>(&mut self, cipher: &C, pass: u8) {
        let pad = self.pad(cipher, pass, &self.right);
        xor(&mut self.left, &pad, self.half_len);
        self.clear_left_nibble();
    }

    /// Passes 4, 3 and 2 backwards: from (left_2, right_2) to (left_0, right_1).
    #[inline(always)]
    fn unmix_to_left_0<C: BlockCipher>(&mut self, cipher: &C) {
        self.mix_left(cipher, 4);
        self.mix_right(cipher, 3);
        self.mix_left(cipher, 2);
    }

    /// `AES_ECB(key, expand(len, pass, half))`: the half in the most significant octets,
    /// zeros, then the plaintext length and the pass number as the last two octets.
    #[inline(always)]
    fn pad<C: BlockCipher>(
        &self,
        cipher: &C,
        pass: u8,
        half: &[u8; MAX_HALF_LEN],
    ) -> [u8; BLOCK_LEN] {
        let mut block = [0u8; BLOCK_LEN];
        for i in 0..MAX_HALF_LEN {
            if i < self.half_len {
                block[i] = half[i];
            }
        }
        block[BLOCK_LEN - 2] = self.len as u8;
        block[BLOCK_LEN - 1] = pass;
        cipher.encrypt_block(&mut block);
        block
    }

    /// Joins the halves into `out` (the first `len` octets), merging the split middle octet.
    #[inline(always)]
    fn merge_into(&self, out: &mut PlaintextBuf) {
        let odd = self.is_odd() as usize;
        for (slot, &byte) in out.iter_mut().zip(&self.left).take(self.half_len) {
            *slot = byte;
        }
        if let Some(middle) = out.get_mut(self.half_len.wrapping_sub(1))
            && odd == 1
        {
            *middle |= self.right[0];
        }
        // right[odd..half_len] follows the left half.
        for i in 0..MAX_HALF_LEN {
            if i + odd < self.half_len
                && let (Some(&byte), Some(slot)) =
                    (self.right.get(i + odd), out.get_mut(self.half_len + i))
            {
                *slot = byte;
            }
        }
    }
}

#[inline(always)]
fn xor(target: &mut [u8; MAX_HALF_LEN], pad: &[u8; BLOCK_LEN], len: usize) {
    for i in 0..MAX_HALF_LEN {
        if i < len {
            target[i] ^= pad[i];
        }
    }
}

/// Encrypts the first `len` octets of `data` (server ID || nonce, 5..=19 octets) in place.
pub(crate) fn encrypt<C: BlockCipher>(cipher: &C, data: &mut PlaintextBuf, len: usize) {
    let mut halves = Halves::split(data, len);
    halves.mix_right(cipher, 1);
    halves.mix_left(cipher, 2);
    halves.mix_right(cipher, 3);
    halves.mix_left(cipher, 4);
    halves.merge_into(data);
}

/// Decrypts the first `len` octets of `data` in place with all four passes.
pub(crate) fn decrypt<C: BlockCipher>(cipher: &C, data: &mut PlaintextBuf, len: usize) {
    let mut halves = Halves::split(data, len);
    halves.unmix_to_left_0(cipher);
    halves.mix_right(cipher, 1);
    halves.merge_into(data);
}

/// Decrypts enough of `ciphertext` (its first `len` octets) to recover the server ID, its
/// first `server_id_len` octets, which are left at the start of the result. Stops after three
/// passes when the server ID lies wholly in left_0, as draft-21 allows (server ID no longer
/// than half the plaintext, rounded down); the rest of the result is then not the nonce.
#[inline(always)]
pub(crate) fn decrypt_server_id<C: BlockCipher>(
    cipher: &C,
    ciphertext: &PlaintextBuf,
    len: usize,
    server_id_len: usize,
) -> PlaintextBuf {
    let mut halves = Halves::split(ciphertext, len);
    halves.unmix_to_left_0(cipher);
    let mut plaintext = [0u8; MAX_PLAINTEXT_LEN];
    if server_id_len > len / 2 {
        halves.mix_right(cipher, 1);
    }
    halves.merge_into(&mut plaintext);
    plaintext
}
