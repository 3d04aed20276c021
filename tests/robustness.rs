//! No input, however malformed, panics a decoder: random bytes, and real payloads mutated
//! (bytes flipped, cut short, spliced), always give `Ok` or a `DecodeError` of that format.

use std::path::Path;

use proptest::prelude::*;
use slaflow::decode::{Decoders, Format};

fn fixtures() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json" || e == "ndjson") {
                out.push(std::fs::read(path).unwrap());
            }
        }
    }
    out.sort();
    out
}

fn check(bytes: &[u8]) {
    let decoders = Decoders::default();
    for format in Format::ALL {
        if let Err(err) = decoders.decode(format, bytes) {
            assert_eq!(err.format, format);
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Splice in fragments that stress JSON number and string handling.
    let fragments = prop::sample::select(vec![
        b"99999999999999999999999".to_vec(),
        b"-1".to_vec(),
        b"1e400".to_vec(),
        b"\"\\ud800\"".to_vec(),
        b"null".to_vec(),
        b"[[[[".to_vec(),
        b"{\"a\":".to_vec(),
        b"\"0001-01-01T00:00:00Z\"".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), fragments).prop_map(|(i, f)| Mutation::Insert(i, f)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::Insert(i, f) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, f.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(index in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let all = fixtures();
        let original = all[index.index(all.len())].clone();
        check(&apply(original, &mutations));
    }
}

#[test]
fn every_fixture_and_its_prefixes_never_panic() {
    // Every cut of every real payload: exhaustive over the truncation points.
    for original in fixtures() {
        for end in 0..=original.len() {
            check(&original[..end]);
        }
    }
}
