//! Routable tokens: the block in front of a server's token decodes as a CID does.

use rand::{SeedableRng, rngs::StdRng};
use router_common::quic_lb::{Aes128, Config, ConfigParams, DecodeError, Decoder, Encoder, Key};

const SERVER_ID: [u8; 3] = [0x0a, 0x0b, 0x0c];

fn config(codepoint: u8, encrypted: bool) -> Config<Aes128> {
    let key = Key::from_slice(&[0x42; 16]).unwrap();
    Config::new(
        ConfigParams::new(codepoint, 3, 6),
        encrypted.then(|| key.aes128()),
    )
    .unwrap()
}

fn decoder(codepoint: u8, encrypted: bool) -> Decoder<Aes128> {
    let mut decoder = Decoder::new();
    decoder.insert(config(codepoint, encrypted));
    decoder
}

/// A token: a block minted as a CID, then `opaque`.
fn token(codepoint: u8, encrypted: bool, opaque: &[u8]) -> Vec<u8> {
    let block = Encoder::new(config(codepoint, encrypted))
        .encode(
            &SERVER_ID,
            &[1, 2, 3, 4, 5, 6],
            &mut StdRng::seed_from_u64(7),
        )
        .unwrap();
    [block.as_slice(), opaque].concat()
}

#[test]
fn a_token_block_decodes_to_its_server_id_in_every_mode() {
    for encrypted in [false, true] {
        let token = token(2, encrypted, b"opaque server token");
        let (codepoint, server_id) = decoder(2, encrypted).token_server_id(&token).unwrap();
        assert_eq!((codepoint, server_id.as_slice()), (2, &SERVER_ID[..]));
    }
}

#[test]
fn the_block_is_the_configs_cid_length_and_the_rest_is_the_servers() {
    let token = token(1, true, b"opaque");
    let (block, opaque) = decoder(1, true).token_block(&token).unwrap();
    assert_eq!(block.len(), ConfigParams::new(1, 3, 6).cid_len());
    assert_eq!(opaque, b"opaque");
}

#[test]
fn a_token_shorter_than_the_cid_length_names_no_server() {
    let token = token(1, true, b"");
    let short = &token[..token.len() - 1];
    assert_eq!(
        decoder(1, true).token_server_id(short).unwrap_err(),
        DecodeError::TooShort {
            config_rotation: 1,
            len: 9,
            needed: 10
        }
    );
    // Exactly the block: routable (a server's opaque part may be empty).
    assert!(decoder(1, true).token_server_id(&token).is_ok());
}

#[test]
fn empty_unroutable_and_unknown_codepoints_name_no_server() {
    let decoder = decoder(0, false);
    assert_eq!(decoder.token_server_id(&[]), Err(DecodeError::Empty));
    assert_eq!(
        decoder.token_server_id(&[0xe9; 12]),
        Err(DecodeError::Unroutable)
    );
    assert_eq!(
        decoder.token_server_id(&token(3, false, b"x")),
        Err(DecodeError::UnknownConfigRotation(3))
    );
}
