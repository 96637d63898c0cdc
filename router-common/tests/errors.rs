//! Every kind of invalid config, key, encode and decode input gets its own error.

use rand::{SeedableRng, rngs::StdRng};
use router_common::quic_lb::{
    Config, ConfigError, ConfigParams, DecodeError, Decoder, EncodeError, Encoder, Key, KeyError,
    encode_unroutable,
};

fn plaintext_config(params: ConfigParams) -> Result<Config<aes::Aes128>, ConfigError> {
    Config::new(params, None)
}

#[test]
fn each_invalid_config_has_its_own_error() {
    let cases = [
        (
            ConfigParams::new(7, 4, 4),
            ConfigError::ReservedConfigRotation,
        ),
        (
            ConfigParams::new(8, 4, 4),
            ConfigError::ConfigRotationOutOfRange(8),
        ),
        (
            ConfigParams::new(0, 0, 4),
            ConfigError::ServerIdLenOutOfRange(0),
        ),
        (
            ConfigParams::new(0, 16, 4),
            ConfigError::ServerIdLenOutOfRange(16),
        ),
        (
            ConfigParams::new(0, 4, 3),
            ConfigError::NonceLenOutOfRange(3),
        ),
        (
            ConfigParams::new(0, 1, 19),
            ConfigError::NonceLenOutOfRange(19),
        ),
        (
            ConfigParams::new(0, 15, 5),
            ConfigError::PlaintextTooLong {
                server_id_len: 15,
                nonce_len: 5,
            },
        ),
        (
            ConfigParams {
                server_use_len: 2,
                ..ConfigParams::new(0, 10, 9)
            },
            ConfigError::CidTooLong { cid_len: 22 },
        ),
    ];
    for (params, expected) in cases {
        assert_eq!(
            plaintext_config(params).unwrap_err(),
            expected,
            "{params:?}"
        );
        assert_eq!(params.validate().unwrap_err(), expected);
    }
}

#[test]
fn boundary_configs_are_valid() {
    for params in [
        ConfigParams::new(0, 1, 4),
        ConfigParams::new(6, 15, 4),
        ConfigParams::new(3, 1, 18),
        ConfigParams::new(0, 10, 9),
        ConfigParams {
            server_use_len: 1,
            ..ConfigParams::new(0, 10, 8)
        },
    ] {
        plaintext_config(params).unwrap_or_else(|e| panic!("{params:?}: {e}"));
    }
}

#[test]
fn keys_are_sixteen_octets() {
    assert_eq!(Key::from_slice(&[0; 15]).unwrap_err(), KeyError(15));
    assert_eq!(Key::from_slice(&[0; 17]).unwrap_err(), KeyError(17));
    assert!(Key::from_slice(&[0; 16]).is_ok());
}

#[test]
fn keys_and_ciphers_never_show_in_debug_output() {
    let key = Key::from_slice(&[0x5a; 16]).unwrap();
    let shown = format!("{key:?}");
    assert!(!shown.contains("5a") && !shown.contains("90"), "{shown}");
    let config = Config::new(ConfigParams::new(0, 4, 4), Some(key.aes128())).unwrap();
    let shown = format!("{config:?}");
    assert!(
        shown.contains("encrypted: true") && !shown.contains("5a"),
        "{shown}"
    );
}

#[test]
fn encoder_checks_server_id_and_nonce_lengths() {
    let encoder = Encoder::new(plaintext_config(ConfigParams::new(0, 3, 4)).unwrap());
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(
        encoder.encode(&[1, 2], &[0; 4], &mut rng).unwrap_err(),
        EncodeError::ServerIdLength {
            expected: 3,
            actual: 2
        }
    );
    assert_eq!(
        encoder.encode(&[1, 2, 3], &[0; 5], &mut rng).unwrap_err(),
        EncodeError::NonceLength {
            expected: 4,
            actual: 5
        }
    );
}

#[test]
fn unroutable_cids_use_codepoint_seven_and_self_describe_their_length() {
    let mut rng = StdRng::seed_from_u64(0);
    for len in 8..=20 {
        let cid = encode_unroutable(len, &mut rng).unwrap();
        assert_eq!(cid.len(), len);
        assert_eq!(cid.as_slice()[0], 0xe0 | (len as u8 - 1));
        let mut decoder = Decoder::<aes::Aes128>::new();
        decoder.insert(plaintext_config(ConfigParams::new(0, 3, 4)).unwrap());
        assert_eq!(
            decoder.decode(cid.as_slice()).unwrap_err(),
            DecodeError::Unroutable
        );
        assert_eq!(
            decoder.server_id(cid.as_slice()).unwrap_err(),
            DecodeError::Unroutable
        );
    }
    assert_eq!(
        encode_unroutable(7, &mut rng).unwrap_err(),
        EncodeError::UnroutableLength(7)
    );
    assert_eq!(
        encode_unroutable(21, &mut rng).unwrap_err(),
        EncodeError::UnroutableLength(21)
    );
}

#[test]
fn decoder_reports_why_a_cid_is_unroutable() {
    let mut decoder = Decoder::<aes::Aes128>::new();
    decoder.insert(plaintext_config(ConfigParams::new(1, 3, 4)).unwrap());
    assert_eq!(decoder.decode(&[]).unwrap_err(), DecodeError::Empty);
    assert_eq!(
        decoder.decode(&[0x07, 1, 2, 3, 4, 5, 6, 7]).unwrap_err(),
        DecodeError::UnknownConfigRotation(0)
    );
    assert_eq!(
        decoder.server_id(&[0x27, 1, 2, 3, 4, 5, 6]).unwrap_err(),
        DecodeError::TooShort {
            config_rotation: 1,
            len: 7,
            needed: 8
        }
    );
    // Longer than the config's length is fine: the extra octets are for the server's use.
    let decoded = decoder.decode(&[0x27, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    assert_eq!(decoded.server_id.as_slice(), &[1, 2, 3]);
    assert_eq!(decoded.nonce.as_slice(), &[4, 5, 6, 7]);
    assert!(decoder.remove(1).is_some());
    assert_eq!(
        decoder.decode(&[0x27, 1, 2, 3, 4, 5, 6, 7]).unwrap_err(),
        DecodeError::UnknownConfigRotation(1)
    );
}

#[test]
fn encoded_cids_carry_random_low_bits_without_length_self_description() {
    let config = plaintext_config(ConfigParams {
        length_self_description: false,
        server_use_len: 3,
        ..ConfigParams::new(2, 3, 4)
    })
    .unwrap();
    let encoder = Encoder::new(config);
    let mut rng = StdRng::seed_from_u64(9);
    let mut low_bits = std::collections::HashSet::new();
    let mut server_use = std::collections::HashSet::new();
    for _ in 0..64 {
        let cid = encoder.encode(&[1, 2, 3], &[4, 5, 6, 7], &mut rng).unwrap();
        assert_eq!(cid.len(), 11);
        assert_eq!(cid.as_slice()[0] >> 5, 2);
        assert_eq!(&cid.as_slice()[1..8], &[1, 2, 3, 4, 5, 6, 7]);
        low_bits.insert(cid.as_slice()[0] & 0x1f);
        server_use.insert(cid.as_slice()[8..].to_vec());
    }
    assert!(
        low_bits.len() > 16,
        "first-octet low bits look constant: {low_bits:?}"
    );
    assert!(server_use.len() > 60, "server-use octets look constant");
}
