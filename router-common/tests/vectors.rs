//! The draft's test vectors (Appendix B and the worked example of §5.4.2.4), both directions.
//! The data are copied from draft-ietf-quic-load-balancers-21 with its two misprinted rows
//! explained (see the `erratum` field of each row); alternatives are the other readings.

use rand::{SeedableRng, rngs::StdRng};
use router_common::quic_lb::{
    AesRoundKeys, BlockCipher, Config, ConfigParams, Decoder, Encoder, Key, Mode,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize, Clone)]
struct Vector {
    id: String,
    mode: String,
    config_rotation: u8,
    server_id_len: u8,
    nonce_len: u8,
    key: Option<String>,
    server_id: String,
    nonce: String,
    cid: String,
    length_self_description: bool,
    alternatives: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Every row, and every alternative reading of a row as a row of its own.
fn rows() -> Vec<Vector> {
    let file: VectorFile =
        serde_json::from_str(include_str!("data/quic_lb_vectors.json")).expect("vector file");
    let mut rows = Vec::new();
    for vector in file.vectors {
        for (n, alternative) in vector.alternatives.iter().enumerate() {
            let mut row = vector.clone();
            row.id = format!("{} (alternative {})", vector.id, n + 1);
            if let Some(v) = alternative.get("config_rotation") {
                row.config_rotation = v.as_u64().expect("number") as u8;
            }
            if let Some(v) = alternative.get("nonce") {
                row.nonce = v.as_str().expect("string").to_owned();
            }
            row.cid = alternative["cid"].as_str().expect("string").to_owned();
            rows.push(row);
        }
        rows.push(vector);
    }
    rows
}

fn config(row: &Vector) -> Config<aes::Aes128> {
    config_with(row, |key| key.aes128())
}

/// The row's config, with the cipher that `cipher_of` makes from its key.
fn config_with<C: BlockCipher>(row: &Vector, cipher_of: impl Fn(&Key) -> C) -> Config<C> {
    let params = ConfigParams {
        length_self_description: row.length_self_description,
        ..ConfigParams::new(row.config_rotation, row.server_id_len, row.nonce_len)
    };
    let cipher = row.key.as_ref().map(|key| {
        cipher_of(&Key::from_slice(&hex::decode(key).expect("key hex")).expect("16-octet key"))
    });
    Config::new(params, cipher).expect("valid config")
}

fn expected_mode(row: &Vector) -> Mode {
    match row.mode.as_str() {
        "plaintext" => Mode::Plaintext,
        "single_pass" => Mode::SinglePass,
        "four_pass" => Mode::FourPass,
        other => panic!("{}: unknown mode {other}", row.id),
    }
}

#[test]
fn every_draft_vector_is_in_the_file() {
    let ids: Vec<String> = rows().into_iter().map(|row| row.id).collect();
    for id in [
        "draft21-B.1-1",
        "draft21-B.1-2",
        "draft21-B.2-1",
        "draft21-B.2-2",
        "draft21-B.2-3",
        "draft21-B.2-4",
        "draft21-5.4.2.4-example",
    ] {
        assert!(ids.iter().any(|have| have == id), "missing vector {id}");
    }
}

#[test]
fn encoder_produces_every_vector() {
    let mut rng = StdRng::seed_from_u64(1);
    for row in rows() {
        let config = config(&row);
        assert_eq!(config.mode(), expected_mode(&row), "{}: mode", row.id);
        let encoder = Encoder::new(config);
        let sid = hex::decode(&row.server_id).unwrap();
        let nonce = hex::decode(&row.nonce).unwrap();
        let cid = encoder.encode(&sid, &nonce, &mut rng).expect("encode");
        assert_eq!(cid.to_string(), row.cid, "{}: encoded CID", row.id);
    }
}

#[test]
fn decoder_recovers_every_vector() {
    for row in rows() {
        let mut decoder = Decoder::new();
        decoder.insert(config(&row));
        let cid = hex::decode(&row.cid).unwrap();

        let decoded = decoder.decode(&cid).expect("decode");
        assert_eq!(decoded.config_rotation, row.config_rotation, "{}", row.id);
        assert_eq!(decoded.server_id.to_string(), row.server_id, "{}", row.id);
        assert_eq!(decoded.nonce.to_string(), row.nonce, "{}", row.id);
        assert_eq!(decoded.mode, expected_mode(&row), "{}", row.id);

        let (config_rotation, server_id) = decoder.server_id(&cid).expect("server ID");
        assert_eq!(config_rotation, row.config_rotation, "{}", row.id);
        assert_eq!(server_id.to_string(), row.server_id, "{}", row.id);
    }
}

/// The XDP program's table-based AES decodes every vector too.
#[test]
fn table_aes_decodes_every_vector() {
    for row in rows() {
        let mut decoder = Decoder::new();
        decoder.insert(config_with(&row, |key| {
            AesRoundKeys::expand(key.as_bytes())
        }));
        let cid = hex::decode(&row.cid).unwrap();
        let (config_rotation, server_id) = decoder.server_id(&cid).expect("server ID");
        assert_eq!(config_rotation, row.config_rotation, "{}", row.id);
        assert_eq!(server_id.to_string(), row.server_id, "{}", row.id);
        let decoded = decoder.decode(&cid).expect("decode");
        assert_eq!(decoded.nonce.to_string(), row.nonce, "{}", row.id);
    }
}
