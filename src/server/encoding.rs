//! Request bodies' `Content-Encoding`: identity, gzip (and deflate's zlib framing), zstd,
//! decompressed within a limit, so that a small compressed body cannot expand without
//! bound in memory.

use std::io::Read;

/// A body that could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not an encoding slaflow reads.
    #[error("Content-Encoding {0:?} is not supported: use gzip, deflate, zstd or none")]
    Unsupported(String),
    /// The decompressed body is over the limit.
    #[error("the decompressed body is over the limit")]
    TooLarge,
    /// The bytes are not what their encoding says.
    #[error("the body is not valid {0}: {1}")]
    Corrupt(&'static str, std::io::Error),
}

/// The body decompressed as `encoding` says, at most `limit` bytes.
pub fn decode(encoding: &str, body: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => read_within(flate2::read::GzDecoder::new(body), limit, "gzip"),
        "deflate" => read_within(flate2::read::ZlibDecoder::new(body), limit, "deflate"),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| Error::Corrupt("zstd", e))?;
            read_within(decoder, limit, "zstd")
        }
        other => Err(Error::Unsupported(other.to_string())),
    }
}

fn read_within(reader: impl Read, limit: usize, name: &'static str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    // One byte more than the limit tells "at the limit" from "over it".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Corrupt(name, e))?;
    if out.len() > limit {
        return Err(Error::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_and_zstd_bodies_come_out_as_they_went_in() {
        let data = b"[[{\"service\":\"web\",\"start\":1,\"duration\":2}]]".repeat(100);
        assert_eq!(decode("gzip", &gzip(&data), 1 << 20).unwrap(), data);
        let zstd = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decode("zstd", &zstd, 1 << 20).unwrap(), data);
        assert_eq!(decode("identity", &data, 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_named() {
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(decode("gzip", &bomb, 1 << 20), Err(Error::TooLarge)));
        let err = decode("gzip", b"not gzip at all", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not valid gzip"), "{err}");
        assert!(matches!(decode("br", b"x", 10), Err(Error::Unsupported(_))));
    }
}
