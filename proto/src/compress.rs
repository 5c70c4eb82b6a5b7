//! The report envelope on the wire: one codec byte, then the report, raw or LZ4-compressed
//! with its uncompressed size prepended. The declared size is checked against the limits
//! before anything is allocated, so a small buffer cannot expand into a large one.

use crate::{
    decode::{self, DecodeError, Limits},
    encode,
    model::Report,
};

const RAW: u8 = 0;
const LZ4: u8 = 1;

/// A report as it goes on a report stream (LZ4-compressed).
pub fn seal(report: &Report) -> Vec<u8> {
    let flat = encode::report(report);
    let mut sealed = Vec::with_capacity(flat.len() / 2 + 8);
    sealed.push(LZ4);
    sealed.extend_from_slice(&lz4_flex::compress_prepend_size(&flat));
    sealed
}

/// Opens and decodes a report stream's bytes.
pub fn open(bytes: &[u8], limits: &Limits) -> Result<Report, DecodeError> {
    match bytes.split_first() {
        Some((&RAW, flat)) => decode::report(flat, limits),
        Some((&LZ4, compressed)) => {
            let declared = compressed
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(DecodeError::Missing("compressed size"))?
                as usize;
            if declared > limits.max_bytes {
                return Err(DecodeError::TooLarge {
                    size: declared,
                    limit: limits.max_bytes,
                });
            }
            let flat = lz4_flex::decompress_size_prepended(compressed)
                .map_err(DecodeError::Compression)?;
            decode::report(&flat, limits)
        }
        Some((&codec, _)) => Err(DecodeError::UnknownValue {
            what: "codec",
            value: codec.into(),
        }),
        None => Err(DecodeError::Missing("codec")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample_report;

    #[test]
    fn sealed_reports_open_and_bombs_are_refused_before_allocation() {
        let report = sample_report();
        let limits = Limits::default();
        assert_eq!(open(&seal(&report), &limits).expect("valid"), report);
        let mut raw = vec![RAW];
        raw.extend(encode::report(&report));
        assert_eq!(open(&raw, &limits).expect("raw works too"), report);
        let mut bomb = vec![LZ4];
        bomb.extend_from_slice(&u32::MAX.to_le_bytes());
        bomb.extend_from_slice(&[0; 16]);
        assert!(matches!(
            open(&bomb, &limits),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(open(&[9, 1, 2], &limits).is_err());
        assert!(open(&[], &limits).is_err());
        let sealed = seal(&report);
        for cut in 1..sealed.len() {
            assert!(open(&sealed[..cut], &limits).is_err(), "truncated at {cut}");
        }
    }
}
