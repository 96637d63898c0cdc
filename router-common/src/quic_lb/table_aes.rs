//! Table-based AES-128 for the XDP program, where neither RustCrypto's `aes` nor the kernel's
//! crypto kfuncs can be used (see the platform notes). User space expands the key into
//! [`AesRoundKeys`] and stores it in a map; the program encrypts and decrypts with the T-tables
//! below, which the compiler computes and places in read-only data.
//!
//! Table lookups indexed by key-dependent bytes make this implementation's timing depend on
//! the cache: the README discusses what that means for the router.

use super::{BLOCK_LEN, BlockCipher};

/// Encryption and decryption round keys (equivalent inverse cipher) of one AES-128 key.
/// `repr(C)` so that it can live in a BPF map value.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AesRoundKeys {
    pub encrypt: [u32; 44],
    pub decrypt: [u32; 44],
}

/// Never shows the round keys: they are the key.
impl core::fmt::Debug for AesRoundKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AesRoundKeys(<redacted>)")
    }
}

impl zeroize::Zeroize for AesRoundKeys {
    fn zeroize(&mut self) {
        self.encrypt.zeroize();
        self.decrypt.zeroize();
    }
}

const fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// The S-box: multiplicative inverse in GF(2^8), then the affine transform.
const fn make_sbox() -> [u8; 256] {
    let mut sbox = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        // x^254 is the inverse of x (and 0 for 0).
        let mut inverse = 1u8;
        let mut i = 0;
        while i < 254 {
            inverse = gf_mul(inverse, x as u8);
            i += 1;
        }
        if x == 0 {
            inverse = 0;
        }
        sbox[x] = inverse
            ^ inverse.rotate_left(1)
            ^ inverse.rotate_left(2)
            ^ inverse.rotate_left(3)
            ^ inverse.rotate_left(4)
            ^ 0x63;
        x += 1;
    }
    sbox
}

const fn invert(sbox: &[u8; 256]) -> [u8; 256] {
    let mut inverse = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        inverse[sbox[x] as usize] = x as u8;
        x += 1;
    }
    inverse
}

/// Four tables: `table[0][x]` is the column `sbox[x]` times `coefficients`, and `table[r]`
/// is `table[0]` rotated right by `8 * r` bits.
const fn make_tables(sbox: &[u8; 256], coefficients: [u8; 4]) -> [[u32; 256]; 4] {
    let mut tables = [[0u32; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let s = sbox[x];
        let word = u32::from_be_bytes([
            gf_mul(s, coefficients[0]),
            gf_mul(s, coefficients[1]),
            gf_mul(s, coefficients[2]),
            gf_mul(s, coefficients[3]),
        ]);
        tables[0][x] = word;
        tables[1][x] = word.rotate_right(8);
        tables[2][x] = word.rotate_right(16);
        tables[3][x] = word.rotate_right(24);
        x += 1;
    }
    tables
}

static SBOX: [u8; 256] = make_sbox();
static INV_SBOX: [u8; 256] = invert(&SBOX);
static TE: [[u32; 256]; 4] = make_tables(&SBOX, [2, 1, 1, 3]);
static TD: [[u32; 256]; 4] = make_tables(&INV_SBOX, [14, 9, 13, 11]);

#[inline(always)]
const fn byte(word: u32, index: usize) -> usize {
    ((word >> (24 - 8 * index)) & 0xff) as usize
}

#[inline(always)]
fn load(block: &[u8; BLOCK_LEN], keys: &[u32; 44]) -> [u32; 4] {
    let mut state = [0u32; 4];
    for (i, word) in state.iter_mut().enumerate() {
        *word = u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ]) ^ keys[i];
    }
    state
}

#[inline(always)]
fn store(state: &[u32; 4], block: &mut [u8; BLOCK_LEN]) {
    for (i, word) in state.iter().enumerate() {
        block[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
}

/// Nine full rounds and the final one. `step` is 1 for encryption (ShiftRows) and 3 for
/// decryption (InvShiftRows): column `c` takes row `r` from column `c + step * r`.
#[inline(always)]
fn rounds(
    mut state: [u32; 4],
    keys: &[u32; 44],
    tables: &[[u32; 256]; 4],
    sbox: &[u8; 256],
    step: usize,
) -> [u32; 4] {
    for round in 1..10 {
        let mut next = [0u32; 4];
        for (c, word) in next.iter_mut().enumerate() {
            *word = tables[0][byte(state[c], 0)]
                ^ tables[1][byte(state[(c + step) % 4], 1)]
                ^ tables[2][byte(state[(c + 2 * step) % 4], 2)]
                ^ tables[3][byte(state[(c + 3 * step) % 4], 3)]
                ^ keys[4 * round + c];
        }
        state = next;
    }
    let mut last = [0u32; 4];
    for (c, word) in last.iter_mut().enumerate() {
        *word = u32::from_be_bytes([
            sbox[byte(state[c], 0)],
            sbox[byte(state[(c + step) % 4], 1)],
            sbox[byte(state[(c + 2 * step) % 4], 2)],
            sbox[byte(state[(c + 3 * step) % 4], 3)],
        ]) ^ keys[40 + c];
    }
    last
}

impl AesRoundKeys {
    /// The FIPS-197 key expansion, and the decryption keys of the equivalent inverse cipher.
    pub fn expand(key: &[u8; BLOCK_LEN]) -> Self {
        const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
        let mut encrypt = [0u32; 44];
        for (i, word) in encrypt.iter_mut().take(4).enumerate() {
            *word =
                u32::from_be_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
        }
        for i in 4..44 {
            let mut temp = encrypt[i - 1];
            if i % 4 == 0 {
                let rotated = temp.rotate_left(8).to_be_bytes();
                temp = u32::from_be_bytes(rotated.map(|b| SBOX[b as usize]))
                    ^ (u32::from(RCON[i / 4 - 1]) << 24);
            }
            encrypt[i] = encrypt[i - 4] ^ temp;
        }

        let mut decrypt = [0u32; 44];
        for round in 0..=10 {
            for c in 0..4 {
                let word = encrypt[4 * (10 - round) + c];
                decrypt[4 * round + c] = if round == 0 || round == 10 {
                    word
                } else {
                    // InvMixColumns: the decryption tables undo the S-box first.
                    (0..4).fold(0, |acc, r| acc ^ TD[r][SBOX[byte(word, r)] as usize])
                };
            }
        }
        Self { encrypt, decrypt }
    }
}

// Not inlined: in the XDP program each block operation then gets its own stack frame (BPF
// allows 512 octets in all), instead of four inlined copies sharing the caller's.
impl BlockCipher for AesRoundKeys {
    #[inline(never)]
    fn encrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        let state = rounds(load(block, &self.encrypt), &self.encrypt, &TE, &SBOX, 1);
        store(&state, block);
    }

    #[inline(never)]
    fn decrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        let state = rounds(load(block, &self.decrypt), &self.decrypt, &TD, &INV_SBOX, 3);
        store(&state, block);
    }
}
