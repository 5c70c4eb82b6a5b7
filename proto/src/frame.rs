//! Framing on QUIC streams. A report travels alone on its own unidirectional stream, so the
//! stream's end delimits it. Control messages share one bidirectional stream: each is a
//! 4-byte big-endian length followed by that many bytes.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Largest control frame accepted (certificates and task descriptions fit).
pub const MAX_CONTROL_FRAME: usize = 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("reading a frame")]
    Io(#[from] std::io::Error),
}

/// Appends one length-prefixed frame to `out`, so several can go in one write.
pub fn append_frame(out: &mut Vec<u8>, frame: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    Ok(())
}

/// Writes one length-prefixed frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    append_frame(&mut out, frame)?;
    writer.write_all(&out).await?;
    writer.flush().await
}

/// Reads one length-prefixed frame of at most `limit` bytes; `Ok(None)` at a clean end of
/// stream before a frame starts.
///
/// Not cancel-safe: a read dropped mid-frame loses the bytes it took, and the stream is out
/// of step from then on. In a `select!` loop, keep one read alive across iterations (a
/// stream of frames, as the aggregator's ingest does) rather than starting one per turn.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let size = u32::from_be_bytes(len) as usize;
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    let mut frame = vec![0u8; size];
    reader.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").await.expect("write");
        write_frame(&mut wire, &[7; 100]).await.expect("write");
        let mut reader = wire.as_slice();
        assert_eq!(
            read_frame(&mut reader, 1000).await.expect("read"),
            Some(b"hello".to_vec())
        );
        let err = read_frame(&mut reader, 10).await.expect_err("too large");
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 100,
                    limit: 10
                }
            ),
            "{err}"
        );
        assert_eq!(read_frame(&mut &[][..], 10).await.expect("clean end"), None);
    }
}
