//! The four-pass Feistel network of draft-21 §5.4.2 ("General Case"), for any plaintext
//! length 5..=19, odd lengths included.
//!
//! Fixed-size arrays and small functions only: the XDP program runs this same code.

use super::{BLOCK_LEN, BlockCipher};

/// Half of the longest plaintext (19 octets), rounded up.
const MAX_HALF_LEN: usize = 10;

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
    fn split(data: &[u8]) -> Self {
        let len = data.len();
        let half_len = len.div_ceil(2);
        let mut halves = Self {
            left: [0; MAX_HALF_LEN],
            right: [0; MAX_HALF_LEN],
            half_len,
            len,
        };
        halves.left[..half_len].copy_from_slice(&data[..half_len]);
        halves.right[..half_len].copy_from_slice(&data[len - half_len..]);
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
        if self.is_odd() {
            self.left[self.half_len - 1] &= 0xf0;
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
        block[..self.half_len].copy_from_slice(&half[..self.half_len]);
        block[BLOCK_LEN - 2] = self.len as u8;
        block[BLOCK_LEN - 1] = pass;
        cipher.encrypt_block(&mut block);
        block
    }

    /// Joins the halves into `out` (`len` octets), merging the split middle octet.
    #[inline(always)]
    fn merge_into(&self, out: &mut [u8]) {
        let half_len = self.half_len;
        out[..half_len].copy_from_slice(&self.left[..half_len]);
        if self.is_odd() {
            out[half_len - 1] |= self.right[0];
            out[half_len..].copy_from_slice(&self.right[1..half_len]);
        } else {
            out[half_len..].copy_from_slice(&self.right[..half_len]);
        }
    }
}

#[inline(always)]
fn xor(target: &mut [u8; MAX_HALF_LEN], pad: &[u8; BLOCK_LEN], len: usize) {
    for (t, p) in target[..len].iter_mut().zip(pad) {
        *t ^= p;
    }
}

/// Encrypts `data` (server ID || nonce, 5..=19 octets) in place with all four passes.
pub(crate) fn encrypt<C: BlockCipher>(cipher: &C, data: &mut [u8]) {
    let mut halves = Halves::split(data);
    halves.mix_right(cipher, 1);
    halves.mix_left(cipher, 2);
    halves.mix_right(cipher, 3);
    halves.mix_left(cipher, 4);
    halves.merge_into(data);
}

/// Decrypts `data` in place with all four passes (the nonce is wanted too).
pub(crate) fn decrypt<C: BlockCipher>(cipher: &C, data: &mut [u8]) {
    let mut halves = Halves::split(data);
    halves.unmix_to_left_0(cipher);
    halves.mix_right(cipher, 1);
    halves.merge_into(data);
}

/// Decrypts only the server ID (the first `server_id.len()` octets of the plaintext) from
/// `ciphertext`. Stops after three passes when the server ID lies wholly in left_0, as
/// draft-21 allows (server ID no longer than half the plaintext, rounded down).
pub(crate) fn decrypt_server_id<C: BlockCipher>(
    cipher: &C,
    ciphertext: &[u8],
    server_id: &mut [u8],
) {
    let mut halves = Halves::split(ciphertext);
    halves.unmix_to_left_0(cipher);
    let server_id_len = server_id.len();
    if server_id_len <= ciphertext.len() / 2 {
        server_id.copy_from_slice(&halves.left[..server_id_len]);
        return;
    }
    halves.mix_right(cipher, 1);
    let mut plaintext = [0u8; 2 * MAX_HALF_LEN];
    halves.merge_into(&mut plaintext[..ciphertext.len()]);
    server_id.copy_from_slice(&plaintext[..server_id_len]);
}
