//! The XDP program's table-based AES against FIPS-197 and against RustCrypto's `aes`.

use proptest::prelude::*;
use router_common::quic_lb::{AesRoundKeys, BlockCipher, Key};

#[test]
fn fips_197_appendix_c1() {
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let plaintext: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
    let keys = AesRoundKeys::expand(&key);
    let mut block = plaintext;
    keys.encrypt_block(&mut block);
    assert_eq!(hex::encode(block), "69c4e0d86a7b0430d8cdb78070b4c55a");
    keys.decrypt_block(&mut block);
    assert_eq!(block, plaintext);
}

#[test]
fn round_keys_are_redacted_in_debug_output() {
    let keys = AesRoundKeys::expand(&[0x42; 16]);
    assert_eq!(format!("{keys:?}"), "AesRoundKeys(<redacted>)");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn matches_rustcrypto(key in any::<[u8; 16]>(), block in any::<[u8; 16]>()) {
        let table = AesRoundKeys::expand(&key);
        let reference = Key::from_slice(&key).unwrap().aes128();

        let (mut ours, mut theirs) = (block, block);
        table.encrypt_block(&mut ours);
        reference.encrypt_block(&mut theirs);
        prop_assert_eq!(ours, theirs);

        let (mut ours, mut theirs) = (block, block);
        table.decrypt_block(&mut ours);
        reference.decrypt_block(&mut theirs);
        prop_assert_eq!(ours, theirs);
    }
}
